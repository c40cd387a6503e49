//! What a parent can hand to a child function ([`Pass`]) and what the
//! child receives ([`Receive`]): queues, typed queues and pipe ends by
//! inheritance (the child attaches its own handles), plain values as text,
//! and tuples of those.

use crate::error::OpenError;
use crate::typed::{Message, TypedQueue};
use crate::{Connection, PipeReader, PipeWriter, Queue, TypedConnection};
use std::process::Command;

/// A value the parent hands to a child function: [`super::spawn`]`(f,
/// args)` calls `f` in the child with `args`'s [`Pass::Received`].
///
/// | parent passes | child's function receives |
/// | --- | --- |
/// | `&Queue` | `Queue` |
/// | `&TypedQueue<T>` | `TypedQueue<T>` |
/// | `&Connection` (a pipe end) | `Connection` |
/// | `&PipeReader`, `&PipeWriter` | `PipeReader`, `PipeWriter` |
/// | `&TypedConnection<T>` | `TypedConnection<T>` |
/// | integers, `bool`, `char`, `f32`, `f64`, `String` | the same value |
/// | `&str` | `String` |
/// | `()`, tuples of up to six of the above | the tuple of what each receives |
///
/// Implement it (with [`Receive`]) for a struct of your own by passing
/// each field in turn.
pub trait Pass {
    /// What the child's function receives for this value.
    type Received: Receive;
    /// Arranges for the child to receive this value (in order, one
    /// [`Handoff`] slot per handle or value).
    fn pass(&self, to: &mut Handoff<'_>);
}

/// A value a child function receives; see [`Pass`].
pub trait Receive: Sized {
    /// Takes this value's slots from the environment the parent set up, in
    /// the order [`Pass::pass`] filled them.
    ///
    /// # Errors
    /// If a handle does not attach, or a value does not parse.
    fn receive(from: &mut Attach) -> Result<Self, OpenError>;
}

/// The parent's side of handing values to a child: numbered environment
/// variables on its `Command`.
#[derive(Debug)]
pub struct Handoff<'a> {
    cmd: &'a mut Command,
    next: usize,
}

impl<'a> Handoff<'a> {
    pub(crate) fn new(cmd: &'a mut Command) -> Self {
        Handoff { cmd, next: 0 }
    }

    /// The next slot: the command and the variable to use.
    pub fn slot(&mut self) -> (&mut Command, String) {
        let var = slot_var(self.next);
        self.next += 1;
        (self.cmd, var)
    }
}

/// The child's side of [`Handoff`]: the same slots, in the same order.
#[derive(Debug, Default)]
pub struct Attach {
    next: usize,
}

impl Attach {
    pub(crate) fn new() -> Self {
        Attach::default()
    }

    /// The next slot's variable name (its value, for a plain value, is
    /// [`Attach::value`]).
    pub fn slot(&mut self) -> String {
        let var = slot_var(self.next);
        self.next += 1;
        var
    }

    /// The next slot's text, removed from the environment.
    ///
    /// # Errors
    /// [`OpenError::InvalidConfig`] if the parent set no such slot.
    pub fn value(&mut self) -> Result<String, OpenError> {
        let var = self.slot();
        let v = std::env::var(&var).map_err(|_| {
            OpenError::InvalidConfig(format!("{var} is not set: not started by shmq::spawn?"))
        })?;
        std::env::remove_var(&var);
        Ok(v)
    }
}

fn slot_var(n: usize) -> String {
    format!("SHMQ_PROCESS_ARG{n}")
}

impl<T: Message> Pass for TypedQueue<T> {
    type Received = TypedQueue<T>;
    fn pass(&self, to: &mut Handoff<'_>) {
        self.queue().pass(to);
    }
}

impl<T: Message> Receive for TypedQueue<T> {
    fn receive(from: &mut Attach) -> Result<Self, OpenError> {
        Queue::receive(from)?.typed()
    }
}

/// Pass and receive a type with `inherit_into` and `from_env`.
macro_rules! pass_inherited {
    ($($t:ty),*) => {$(
        impl Pass for $t {
            type Received = $t;
            fn pass(&self, to: &mut Handoff<'_>) {
                let (cmd, var) = to.slot();
                self.inherit_into(cmd, &var);
            }
        }
        impl Receive for $t {
            fn receive(from: &mut Attach) -> Result<Self, OpenError> {
                let var = from.slot();
                let end = <$t>::from_env(&var);
                std::env::remove_var(&var);
                end
            }
        }
    )*};
}

pass_inherited!(Queue, Connection, PipeReader, PipeWriter);

impl<T: Message> Pass for TypedConnection<T> {
    type Received = TypedConnection<T>;
    fn pass(&self, to: &mut Handoff<'_>) {
        let (cmd, var) = to.slot();
        self.inherit_into(cmd, &var);
    }
}

impl<T: Message> Receive for TypedConnection<T> {
    fn receive(from: &mut Attach) -> Result<Self, OpenError> {
        Connection::receive(from)?.typed()
    }
}

/// A reference passes what its target passes: `spawn(f, &q)`.
impl<P: Pass + ?Sized> Pass for &P {
    type Received = P::Received;
    fn pass(&self, to: &mut Handoff<'_>) {
        (**self).pass(to)
    }
}

impl Pass for str {
    type Received = String;
    fn pass(&self, to: &mut Handoff<'_>) {
        let (cmd, var) = to.slot();
        cmd.env(var, self);
    }
}

/// Plain values travel as their `Display` text and come back with
/// `FromStr` (exact for floats too: Rust prints the shortest text that
/// parses back to the same value).
macro_rules! pass_plain {
    ($($t:ty),*) => {$(
        impl Pass for $t {
            type Received = $t;
            fn pass(&self, to: &mut Handoff<'_>) {
                let (cmd, var) = to.slot();
                cmd.env(var, self.to_string());
            }
        }
        impl Receive for $t {
            fn receive(from: &mut Attach) -> Result<Self, OpenError> {
                let v = from.value()?;
                v.parse().map_err(|_| {
                    OpenError::InvalidConfig(format!(
                        "{v:?} is not a {}", std::any::type_name::<$t>()
                    ))
                })
            }
        }
    )*};
}

pass_plain!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, bool, char, f32, f64, String
);

macro_rules! pass_tuple {
    ($($name:ident),*) => {
        impl<$($name: Pass),*> Pass for ($($name,)*) {
            type Received = ($($name::Received,)*);
            #[allow(non_snake_case, unused_variables)]
            fn pass(&self, to: &mut Handoff<'_>) {
                let ($($name,)*) = self;
                $($name.pass(to);)*
            }
        }
        impl<$($name: Receive),*> Receive for ($($name,)*) {
            #[allow(unused_variables)]
            fn receive(from: &mut Attach) -> Result<Self, OpenError> {
                Ok(($($name::receive(from)?,)*))
            }
        }
    };
}

pass_tuple!();
pass_tuple!(A);
pass_tuple!(A, B);
pass_tuple!(A, B, C);
pass_tuple!(A, B, C, D);
pass_tuple!(A, B, C, D, E);
pass_tuple!(A, B, C, D, E, F);
