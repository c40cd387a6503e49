use super::*;

#[test]
fn cursor_round_trip() {
    for c in [
        Cursor {
            seq: 0,
            pos: 0,
            closed: false,
        },
        Cursor {
            seq: SEQ_MASK,
            pos: POS_MASK,
            closed: true,
        },
        Cursor {
            seq: 12345,
            pos: 1 << 37,
            closed: false,
        },
    ] {
        assert_eq!(Cursor::unpack(c.pack()), c);
    }
}

#[test]
fn desc_round_trip_and_nonzero() {
    let d = Desc {
        tag: TAG_MASK,
        owner: OWNER_MASK,
        state: ST_SKIP,
        len: LEN_MASK as u32,
    };
    assert_eq!(Desc::unpack(d.pack()), d);
    let d = Desc::new(0, ST_COMMITTED, 0);
    assert_ne!(
        d.pack(),
        0,
        "a committed empty message must not read as EMPTY"
    );
}

#[test]
fn wrapping_arithmetic() {
    assert_eq!(pos_sub(pos_add(POS_MASK, 3), POS_MASK), 3);
    assert_eq!(seq_sub(1, SEQ_MASK), 2);
}

#[test]
fn geometry() {
    assert!(Geometry::new(100).is_none());
    assert!(Geometry::new(MIN_CAPACITY / 2).is_none());
    assert!(Geometry::new(MAX_CAPACITY * 2).is_none());
    let g = Geometry::new(1 << 20).unwrap();
    assert_eq!(g.granules, 16384);
    assert_eq!(g.data_off % PAGE, 0);
    assert_eq!(g.ring_len, g.data_off + (1 << 20));
    assert_eq!(footprint(0), 1);
    assert_eq!(footprint(64), 1);
    assert_eq!(footprint(65), 2);
}
