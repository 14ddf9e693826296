//! The journal's behaviour and its recovery from damage.

use super::*;

fn payload(index: u64) -> Vec<u8> {
    format!("entry {index} ")
        .repeat((index % 5 + 1) as usize)
        .into_bytes()
}

/// Appends `from..to` one call per `per_call` records.
fn fill(journal: &mut Journal, from: u64, to: u64, per_call: u64) {
    let mut index = from;
    while index < to {
        let upto = (index + per_call).min(to);
        let payloads: Vec<Vec<u8>> = (index..upto).map(payload).collect();
        journal
            .append(index, payloads.iter().map(Vec::as_slice))
            .expect("append");
        index = upto;
    }
}

fn segments(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn assert_holds(journal: &Journal, from: u64, to: u64) {
    assert_eq!((journal.floor(), journal.next_index()), (from, to));
    let read = journal.read_range(from, to).expect("read");
    let expected: Vec<Vec<u8>> = (from..to).map(payload).collect();
    assert_eq!(read, expected);
}

#[test]
fn appends_read_back_across_segments_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut journal = Journal::open_with(dir.path(), 1024).expect("open");
    assert_eq!((journal.next_index(), journal.last_index()), (1, None));
    fill(&mut journal, 1, 200, 7);
    journal.sync().expect("sync");
    assert!(segments(dir.path()).len() > 3, "rotated");
    assert_holds(&journal, 1, 200);
    assert_eq!(journal.read(57).expect("read"), payload(57));
    assert_eq!(journal.last_index(), Some(199));
    assert!(matches!(
        journal.append(7, [&b"x"[..]]),
        Err(Error::InvalidArgument { .. })
    ));
    drop(journal);
    let journal = Journal::open_with(dir.path(), 1024).expect("reopen");
    assert_holds(&journal, 1, 200);
}

#[test]
fn truncation_within_and_across_segments_is_kept_after_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut journal = Journal::open_with(dir.path(), 1024).expect("open");
    fill(&mut journal, 1, 200, 3);
    journal.truncate_after(150).expect("truncate");
    assert_holds(&journal, 1, 151);
    let before = segments(dir.path()).len();
    journal
        .truncate_after(20)
        .expect("truncate across segments");
    assert!(segments(dir.path()).len() < before);
    assert_holds(&journal, 1, 21);
    // New entries after a truncation take the freed indexes.
    fill(&mut journal, 21, 60, 4);
    journal.sync().expect("sync");
    drop(journal);
    let mut journal = Journal::open_with(dir.path(), 1024).expect("reopen");
    assert_holds(&journal, 1, 60);
    journal.truncate_after(0).expect("truncate everything");
    assert_holds(&journal, 1, 1);
    fill(&mut journal, 1, 5, 1);
    drop(journal);
    assert_holds(&Journal::open_with(dir.path(), 1024).expect("reopen"), 1, 5);
}

#[test]
fn purges_move_the_floor_and_free_whole_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut journal = Journal::open_with(dir.path(), 1024).expect("open");
    fill(&mut journal, 1, 200, 5);
    let before = segments(dir.path()).len();
    journal.purge_through(99).expect("purge");
    assert!(
        segments(dir.path()).len() < before,
        "whole segments deleted"
    );
    assert_holds(&journal, 100, 200);
    assert!(journal.read_range(1, 100).expect("read").is_empty());
    assert!(matches!(
        journal.truncate_after(50),
        Err(Error::InvalidArgument { .. })
    ));
    drop(journal);
    let mut journal = Journal::open_with(dir.path(), 1024).expect("reopen");
    assert_holds(&journal, 100, 200);
    // Past the last record: empty, and the next append starts at the floor.
    journal.purge_through(499).expect("purge past the end");
    assert!(segments(dir.path()).is_empty());
    assert_holds(&journal, 500, 500);
    assert_eq!(journal.last_index(), None);
    drop(journal);
    let mut journal = Journal::open_with(dir.path(), 1024).expect("reopen");
    assert_holds(&journal, 500, 500);
    fill(&mut journal, 500, 520, 3);
    drop(journal);
    assert_holds(
        &Journal::open_with(dir.path(), 1024).expect("reopen"),
        500,
        520,
    );
}

#[test]
fn a_torn_tail_is_cut_and_kept_and_a_zero_tail_just_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut journal = Journal::open_with(dir.path(), 1 << 20).expect("open");
    fill(&mut journal, 1, 30, 4);
    drop(journal);
    let seg = dir.path().join(segment::file_name(1));
    let len = std::fs::metadata(&seg).expect("meta").len();
    // Half of the last record reached the disk.
    let file = OpenOptions::new().write(true).open(&seg).expect("open");
    file.set_len(len - 5).expect("tear");
    drop(file);
    let journal = Journal::open_with(dir.path(), 1 << 20).expect("reopen");
    assert_holds(&journal, 1, 29);
    let torn: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".torn"))
        .collect();
    assert_eq!(torn.len(), 1, "the torn bytes are kept");
    drop(journal);
    // Zeros past the last record (pages that never reached the disk).
    let len = std::fs::metadata(&seg).expect("meta").len();
    let file = OpenOptions::new().write(true).open(&seg).expect("open");
    file.set_len(len + 4096).expect("zeros");
    drop(file);
    let journal = Journal::open_with(dir.path(), 1 << 20).expect("reopen");
    assert_holds(&journal, 1, 29);
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), len);
}

#[test]
fn damage_in_a_sealed_segment_or_a_missing_segment_fails_the_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut journal = Journal::open_with(dir.path(), 512).expect("open");
    fill(&mut journal, 1, 100, 2);
    drop(journal);
    let names = segments(dir.path());
    assert!(names.len() >= 3);
    // A flipped byte in the middle of the oldest segment.
    let oldest = dir.path().join(&names[0]);
    let mut bytes = std::fs::read(&oldest).expect("read");
    bytes[segment::HEADER_LEN + 20] ^= 0x01;
    std::fs::write(&oldest, &bytes).expect("damage");
    assert!(matches!(
        Journal::open_with(dir.path(), 512),
        Err(Error::Corruption { .. })
    ));
    bytes[segment::HEADER_LEN + 20] ^= 0x01;
    std::fs::write(&oldest, &bytes).expect("repair");
    Journal::open_with(dir.path(), 512).expect("opens again");
    // A segment in the middle is gone: a gap.
    std::fs::remove_file(dir.path().join(&names[1])).expect("remove");
    assert!(matches!(
        Journal::open_with(dir.path(), 512),
        Err(Error::Corruption {
            kind: CorruptionKind::OutOfOrder,
            ..
        })
    ));
}

#[test]
fn a_failed_append_is_undone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut journal = Journal::open_with(dir.path(), 1 << 20).expect("open");
    fill(&mut journal, 1, 10, 3);
    let huge = vec![0u8; MAX_PAYLOAD + 1];
    assert!(matches!(
        journal.append(10, [&b"ok"[..], &huge[..]]),
        Err(Error::InvalidArgument { .. })
    ));
    assert_holds(&journal, 1, 10);
    fill(&mut journal, 10, 12, 1);
    assert_holds(&journal, 1, 12);
}
