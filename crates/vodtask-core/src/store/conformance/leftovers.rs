//! The records of media objects that may lack a row, which the sweeper
//! (media/library.rs) works from: a row's insert clears its file's record
//! in the same write, a row's delete adds one in the same write.

use super::support::*;
use crate::ids::FileId;
use crate::task::Outcome;

fn id(s: &str) -> FileId {
    FileId::from_stored(s.into())
}

async fn leftovers(store: &Dyn, owner: &str) -> Vec<String> {
    let mut files: Vec<String> = store
        .media_leftovers(owner, 100)
        .await
        .expect("media_leftovers")
        .into_iter()
        .map(|f| f.file_id.as_str().to_string())
        .collect();
    files.sort();
    files
}

/// A write in progress is its owner's: not swept while that owner lives,
/// swept by any other (its owner died), and swept by all once given up.
pub async fn writes_belong_to_their_owner_until_given_up(store: Dyn) {
    store
        .note_media_write(&id("w1"), "node-a", at(1))
        .await
        .expect("note");
    store
        .note_media_write(&id("w2"), "node-a", at(2))
        .await
        .expect("note");
    assert_eq!(leftovers(&store, "node-a").await, Vec::<String>::new());
    assert_eq!(leftovers(&store, "node-b").await, ["w1", "w2"]);
    store.abandon_media_write(&id("w2")).await.expect("abandon");
    assert_eq!(leftovers(&store, "node-a").await, ["w2"]);
    store.clear_media_leftover(&id("w2")).await.expect("clear");
    assert_eq!(leftovers(&store, "node-b").await, ["w1"]);
    assert!(
        store
            .media_leftovers("node-b", 0)
            .await
            .expect("limit")
            .is_empty(),
        "the limit holds"
    );
}

/// A committed row clears its file's record: an upload's, and a task's
/// new media in its finish.
pub async fn a_committed_row_clears_its_record(store: Dyn) {
    let app = new_app(&*store, "a").await;
    store
        .note_media_write(&id("up"), "node-a", at(1))
        .await
        .expect("note");
    let src = upload(&*store, app, "up").await;
    let t = queue(&*store, app, &src, at(2)).await;
    let c = claim_of(&*store, &t, at(3)).await;
    let out = output_of(app, &t, "out", at(4));
    store
        .note_media_write(&out.file_id, "node-a", at(4))
        .await
        .expect("note");
    assert_eq!(leftovers(&store, "node-b").await, ["out"]);
    finish(
        &*store,
        &c.lease,
        Outcome::Finished {
            err_code: 0,
            message: String::new(),
            output: Some(play_set(&out.file_id)),
            new_media: vec![out.clone()],
            follow_up: None,
        },
        at(5),
    )
    .await;
    assert_eq!(leftovers(&store, "node-b").await, Vec::<String>::new());
}

/// A finish that is refused (the lease is gone) clears nothing: its
/// outputs' records stay for the sweeper.
pub async fn a_refused_finish_keeps_the_records(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let src = upload(&*store, app, "src").await;
    let t = queue(&*store, app, &src, at(0)).await;
    let c = claim_of(&*store, &t, at(1)).await;
    store.cancel_task(app, &t, at(2)).await.expect("cancel");
    finish(&*store, &c.lease, Outcome::Aborted, at(3)).await;
    let out = output_of(app, &t, "late", at(4));
    store
        .note_media_write(&out.file_id, "node-a", at(4))
        .await
        .expect("note");
    let late = store
        .finish(
            &c.lease,
            Outcome::Finished {
                err_code: 0,
                message: String::new(),
                output: None,
                new_media: vec![out.clone()],
                follow_up: None,
            },
            at(5),
        )
        .await
        .expect("finish");
    assert!(late.is_none(), "the task had ended");
    assert_eq!(leftovers(&store, "node-b").await, ["late"]);
}

/// A delete's end records every file whose row it removed, for any
/// sweeper, in the same write.
pub async fn a_delete_records_the_files_it_removed(store: Dyn) {
    let app = new_app(&*store, "a").await;
    let a = upload(&*store, app, "da").await;
    let b = upload(&*store, app, "db").await;
    let del = insert(&*store, app, delete(&[&a, &b]), 0, at(1)).await;
    let c = claim_of(&*store, &del, at(2)).await;
    finish(
        &*store,
        &c.lease,
        Outcome::Deleted {
            files: vec![a.clone(), b.clone()],
        },
        at(3),
    )
    .await;
    assert_eq!(leftovers(&store, "node-a").await, ["da", "db"]);
    store.clear_media_leftover(&a).await.expect("clear");
    store.clear_media_leftover(&b).await.expect("clear");
    assert_eq!(leftovers(&store, "node-a").await, Vec::<String>::new());
}

/// The multipart uploads a write started come with its record, until the
/// record is cleared or the row committed.
pub async fn multipart_uploads_stay_with_their_record(store: Dyn) {
    let app = new_app(&*store, "a").await;
    store
        .note_media_write(&id("big"), "node-a", at(1))
        .await
        .expect("note");
    store
        .note_multipart(&id("big"), "source.mp4", "upload-1")
        .await
        .expect("note_multipart");
    store
        .note_multipart(&id("big"), "source.mp4", "upload-1")
        .await
        .expect("noting twice is no error");
    let found = store
        .media_leftovers("node-b", 10)
        .await
        .expect("leftovers");
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].multipart,
        [("source.mp4".to_string(), "upload-1".to_string())]
    );
    store.clear_media_leftover(&id("big")).await.expect("clear");
    assert_eq!(leftovers(&store, "node-b").await, Vec::<String>::new());

    // A committed row takes its uploads along.
    store
        .note_media_write(&id("up"), "node-a", at(2))
        .await
        .expect("note");
    store
        .note_multipart(&id("up"), "source.mp4", "upload-2")
        .await
        .expect("note_multipart");
    upload(&*store, app, "up").await;
    store
        .note_media_write(&id("up2"), "node-a", at(3))
        .await
        .expect("note");
    let found = store
        .media_leftovers("node-b", 10)
        .await
        .expect("leftovers");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].multipart, Vec::<(String, String)>::new());
}

/// A write given up (by its writer, or by a sweeper that took the writer
/// for dead) can no longer be recorded: its objects are going.
pub async fn a_given_up_write_cannot_be_recorded(store: Dyn) {
    let app = new_app(&*store, "a").await;
    store
        .note_media_write(&id("slow"), "node-a", at(1))
        .await
        .expect("note");
    store
        .abandon_media_write(&id("slow"))
        .await
        .expect("abandon");
    let media = upload_of(app, "slow", at(2));
    let refused = store.insert_media(&media, None, None).await;
    assert!(
        matches!(refused, Err(crate::error::Error::Unavailable(_))),
        "{refused:?}"
    );
    assert!(
        store
            .get_media(app, &media.file_id)
            .await
            .expect("get_media")
            .is_none()
    );
    assert_eq!(
        leftovers(&store, "node-a").await,
        ["slow"],
        "still to be swept"
    );
}
