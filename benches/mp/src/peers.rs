//! The Rust peers users compare shmq with, driven through the same loops
//! and checks as everything else: ipmpsc (a shared-memory ring behind a
//! process-shared mutex and condition variable, bincode-framed) and
//! iceoryx2 (zero-copy publish-subscribe in shared memory), the latter two
//! ways: a subscriber that busy-polls, and one that sleeps on iceoryx2's
//! event service (the publisher notifies after every sample).
//!
//! Both are set up for a fair fight: the same 4 MiB of room as shmq's ring
//! (ipmpsc's ring; iceoryx2's subscriber buffer in samples), senders that
//! wait for room instead of dropping (iceoryx2: no safe overflow,
//! `RetryUntilDelivered`), receivers that read in place and copy each
//! message out, as shmq's do.

use crate::link::Link;
use crate::proc::Control;
use crate::tput::{self, capacity, Consumer, Tput};
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// ---------------------------------------------------------------- ipmpsc

/// A message as ipmpsc carries it: bincode's length-prefixed bytes.
fn bytes(m: &[u8]) -> &serde_bytes::Bytes {
    serde_bytes::Bytes::new(m)
}

/// Receives one message in place and hands it to `f`.
fn ipmpsc_with<R>(rx: &mut ipmpsc::Receiver, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut ctx = rx.zero_copy_context();
    let m: &[u8] = ctx.recv().expect("ipmpsc recv");
    f(m)
}

/// One-way throughput through an ipmpsc ring; an empty message ends it.
pub fn ipmpsc_tput(size: usize, dur: Duration) -> Tput {
    let (_path, buf) = ipmpsc::SharedRingBuffer::create_temp(capacity(size) as u32).unwrap();
    let tx = ipmpsc::Sender::new(buf.clone());
    let mut rx = ipmpsc::Receiver::new(buf);
    let consumer = Box::new(move |_: &Control| {
        let mut out = vec![0u8; size];
        let (mut n, mut sum) = (0u64, 0u64);
        loop {
            let done = ipmpsc_with(&mut rx, |m| {
                if m.is_empty() {
                    return true;
                }
                out[..m.len()].copy_from_slice(m);
                sum += out[0] as u64;
                n += 1;
                false
            });
            if done {
                return (n, sum);
            }
        }
    }) as Consumer;
    let tx2 = tx.clone();
    let prod = tput::producer(
        1,
        0,
        size,
        move |m| tx.send(&bytes(m)).unwrap(),
        move || tx2.send(&bytes(&[])).unwrap(),
    );
    tput::run(
        size,
        dur,
        vec![tput::ready(prod)],
        vec![tput::ready(consumer)],
        || (),
    )
}

/// One end of a two-way ipmpsc link: a ring per direction.
pub struct Ipmpsc {
    tx: ipmpsc::Sender,
    rx: ipmpsc::Receiver,
}

impl Ipmpsc {
    pub fn pair() -> (Ipmpsc, Ipmpsc) {
        let ring = || ipmpsc::SharedRingBuffer::create_temp(1 << 20).unwrap().1;
        let (ab, ba) = (ring(), ring());
        (
            Ipmpsc {
                tx: ipmpsc::Sender::new(ab.clone()),
                rx: ipmpsc::Receiver::new(ba.clone()),
            },
            Ipmpsc {
                tx: ipmpsc::Sender::new(ba),
                rx: ipmpsc::Receiver::new(ab),
            },
        )
    }
}

impl Link for Ipmpsc {
    fn send(&mut self, msg: &[u8]) {
        self.tx.send(&bytes(msg)).unwrap();
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        ipmpsc_with(&mut self.rx, |m| {
            buf[..m.len()].copy_from_slice(m);
            m.len()
        })
    }
    /// In place, as shmq's echo.
    fn echo(&mut self, _: &mut [u8]) {
        let tx = &self.tx;
        ipmpsc_with(&mut self.rx, |m| tx.send(&bytes(m)).unwrap());
    }
}

// --------------------------------------------------------------- iceoryx2

/// How an iceoryx2 subscriber waits for the next sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoxWait {
    /// `receive` in a loop: never sleeps.
    BusyPoll,
    /// Sleeps on a listener of the event service; publishers notify after
    /// every sample.
    Event,
}

/// A fresh name for this run's services.
fn service_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "shmq-mpbench/{}/{what}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn node() -> Node<ipc::Service> {
    set_log_level(LogLevel::Error);
    NodeBuilder::new()
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .expect("iceoryx2 node")
}

/// Samples a subscriber buffers: the same 4 MiB as shmq's ring.
fn buffer_samples(size: usize) -> usize {
    (capacity(size) / size).clamp(8, 65536)
}

/// The sending half of one iceoryx2 direction.
struct IoxTx {
    publisher: Publisher<ipc::Service, [u8], ()>,
    notifier: Option<Notifier<ipc::Service>>,
}

/// The receiving half of one iceoryx2 direction.
struct IoxRx {
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    listener: Option<Listener<ipc::Service>>,
}

/// One direction: a publish-subscribe service (and an event service for
/// [`IoxWait::Event`]) with this name.
#[derive(Clone)]
struct IoxDir {
    name: String,
    size: usize,
    wait: IoxWait,
}

impl IoxDir {
    fn new(size: usize, wait: IoxWait) -> IoxDir {
        IoxDir {
            name: service_name("data"),
            size,
            wait,
        }
    }

    fn data(
        &self,
        node: &Node<ipc::Service>,
    ) -> iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>
    {
        let name: ServiceName = self.name.as_str().try_into().unwrap();
        node.service_builder(&name)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .history_size(0)
            .subscriber_max_buffer_size(buffer_samples(self.size))
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .expect("iceoryx2 publish-subscribe service")
    }

    fn event(
        &self,
        node: &Node<ipc::Service>,
    ) -> iceoryx2::service::port_factory::event::PortFactory<ipc::Service> {
        let name: ServiceName = format!("{}/event", self.name).as_str().try_into().unwrap();
        node.service_builder(&name)
            .event()
            .open_or_create()
            .expect("iceoryx2 event service")
    }

    /// The receiving half; made before the sending half connects.
    fn rx(&self, node: &Node<ipc::Service>) -> IoxRx {
        let subscriber = self
            .data(node)
            .subscriber_builder()
            .buffer_size(buffer_samples(self.size))
            .create()
            .expect("iceoryx2 subscriber");
        let listener = (self.wait == IoxWait::Event).then(|| {
            self.event(node)
                .listener_builder()
                .create()
                .expect("listener")
        });
        IoxRx {
            subscriber,
            listener,
        }
    }

    /// The sending half; returns once the receiving half exists.
    fn tx(&self, node: &Node<ipc::Service>) -> IoxTx {
        let data = self.data(node);
        let publisher = data
            .publisher_builder()
            .initial_max_slice_len(self.size.max(1))
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .expect("iceoryx2 publisher");
        let notifier = (self.wait == IoxWait::Event).then(|| {
            self.event(node)
                .notifier_builder()
                .create()
                .expect("notifier")
        });
        while data.dynamic_config().number_of_subscribers() == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        IoxTx {
            publisher,
            notifier,
        }
    }
}

impl IoxTx {
    fn send(&self, msg: &[u8]) {
        // `send` answers how many subscribers got the sample, and with
        // `RetryUntilDelivered` that can still be none: iceoryx2 skips a
        // connection whose used-chunk list is full or that it sees as
        // closed, without an error (`details/sender.rs`). Once a CI smoke run
        // lost 4,091 of 18,704 samples so; in 52 runs here, one send saw it. Sent again until one arrives, as
        // every other peer here waits for room; a subscriber gone for good
        // still ends the run, with this message.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let s = self
                .publisher
                .loan_slice_uninit(msg.len())
                .expect("iceoryx2 loan");
            if s.write_from_slice(msg).send().expect("iceoryx2 send") > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "iceoryx2 delivered no sample to its subscriber for 10 s"
            );
            std::thread::yield_now();
        }
        if let Some(n) = &self.notifier {
            n.notify().expect("iceoryx2 notify");
        }
    }
}

impl IoxRx {
    /// Waits for the next sample and hands its payload to `f`.
    fn with<R>(&self, mut f: impl FnMut(&[u8]) -> R) -> R {
        loop {
            if let Some(s) = self.subscriber.receive().expect("iceoryx2 receive") {
                return f(s.payload());
            }
            match &self.listener {
                // A bounded sleep: once in a few thousand runs the event
                // subscriber slept through its wake-up with the publisher
                // blocked on a full buffer (seen with 64-sample buffers);
                // a missed wake-up costs it 10 ms instead of the run.
                Some(l) => {
                    l.timed_wait(|_| {}, Duration::from_millis(10))
                        .expect("iceoryx2 wait");
                }
                None => std::hint::spin_loop(),
            }
        }
    }
}

/// One-way throughput from one publisher process to one subscriber
/// process; a one-byte message of 0 ends it (every real message starts
/// with 1).
pub fn iceoryx2_tput(size: usize, wait: IoxWait, dur: Duration) -> Tput {
    let dir = IoxDir::new(size, wait);
    let d2 = dir.clone();
    let consumer: tput::Setup<Consumer> = Box::new(move || {
        let node = node();
        let rx = dir.rx(&node);
        Box::new(move |_: &Control| {
            let _node = node;
            let mut out = vec![0u8; size];
            let (mut n, mut sum) = (0u64, 0u64);
            loop {
                let end = rx.with(|m| {
                    if m[0] == 0 {
                        return true;
                    }
                    out[..m.len()].copy_from_slice(m);
                    sum += out[0] as u64;
                    n += 1;
                    false
                });
                if end {
                    return (n, sum);
                }
            }
        }) as Consumer
    });
    let producer: tput::Setup<tput::Producer> = Box::new(move || {
        let node = node();
        let tx = std::rc::Rc::new(d2.tx(&node));
        let tx2 = tx.clone();
        tput::producer(
            1,
            0,
            size,
            move |m| {
                let _keep = &node;
                tx.send(m)
            },
            move || tx2.send(&[0]),
        )
    });
    tput::run(size, dur, vec![producer], vec![consumer], || ())
}

/// One end of a two-way iceoryx2 link. Made lazily, in the process that
/// uses it (iceoryx2's nodes are not meant to cross a `fork`), on the first
/// call.
pub struct Iceoryx2 {
    out: IoxDir,
    inn: IoxDir,
    ports: Option<(Node<ipc::Service>, IoxTx, IoxRx)>,
}

impl Iceoryx2 {
    pub fn pair(size: usize, wait: IoxWait) -> (Iceoryx2, Iceoryx2) {
        let (ab, ba) = (IoxDir::new(size, wait), IoxDir::new(size, wait));
        (
            Iceoryx2 {
                out: ab.clone(),
                inn: ba.clone(),
                ports: None,
            },
            Iceoryx2 {
                out: ba,
                inn: ab,
                ports: None,
            },
        )
    }

    fn ports(&mut self) -> &(Node<ipc::Service>, IoxTx, IoxRx) {
        if self.ports.is_none() {
            let node = node();
            // Subscribe first: each side's publisher waits for the other's
            // subscriber, so neither waits for the other.
            let rx = self.inn.rx(&node);
            let tx = self.out.tx(&node);
            self.ports = Some((node, tx, rx));
        }
        self.ports.as_ref().unwrap()
    }
}

impl Link for Iceoryx2 {
    fn send(&mut self, msg: &[u8]) {
        self.ports().1.send(msg);
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        self.ports().2.with(|m| {
            buf[..m.len()].copy_from_slice(m);
            m.len()
        })
    }
    /// In place, as shmq's echo.
    fn echo(&mut self, _: &mut [u8]) {
        let (_, tx, rx) = self.ports();
        rx.with(|m| tx.send(m));
    }
}
