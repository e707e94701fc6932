//! How a task's run ended, as its executor reports it to the store.

use super::{NewTask, TaskOutput};
use crate::ids::FileId;
use crate::media::MediaFile;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The work ended; `err_code` 0 is success. `new_media` are the output
    /// files, recorded in the same transaction.
    Finished {
        err_code: i32,
        message: String,
        output: Option<TaskOutput>,
        new_media: Vec<MediaFile>,
        /// A task to queue in the same transaction (the procedure a pull
        /// starts on the file it created).
        follow_up: Option<Box<NewTask>>,
    },
    /// DeleteMedia: the files' rows and their renditions' go, in the same
    /// transaction as the task's end, unless a waiting or running task uses
    /// one of them (then nothing goes and the task fails).
    Deleted { files: Vec<FileId> },
    /// The work was stopped by CancelTask.
    Aborted,
}
