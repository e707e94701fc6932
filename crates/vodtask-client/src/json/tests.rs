use serde_json::json;

use super::{FieldNames, from_json, to_json};
use crate::Error;
use crate::pb;

fn task() -> pb::Task {
    pb::Task {
        task_id: "transcode-1".into(),
        task_type: pb::TaskType::Transcode as i32,
        status: pb::TaskStatus::Finish as i32,
        attempt: 1,
        create_time: Some(prost_types::Timestamp {
            seconds: 1_765_109_692,
            nanos: 123_000_000,
        }),
        input: Some(pb::TaskSpec {
            kind: Some(pb::task_spec::Kind::Transcode(pb::TranscodeSpec {
                file_id: "f1".into(),
                definitions: vec![100_010, 100_020],
            })),
        }),
        ..Default::default()
    }
}

fn error_of<T: std::fmt::Debug>(result: crate::Result<T>) -> String {
    match result {
        Err(Error::InvalidInput(message)) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn output_spells_names_as_asked_and_enums_by_short_name() {
    let js = to_json(&task(), FieldNames::Json);
    assert_eq!(js["taskId"], "transcode-1");
    assert_eq!(js["taskType"], "TRANSCODE");
    assert_eq!(js["status"], "FINISH");
    assert_eq!(js["createTime"], "2025-12-07T12:14:52.123Z");
    assert_eq!(
        js["input"],
        json!({"transcode": {"fileId": "f1", "definitions": [100010, 100020]}})
    );
    let py = to_json(&task(), FieldNames::Proto);
    assert_eq!(py["task_id"], "transcode-1");
    assert_eq!(py["input"]["transcode"]["file_id"], "f1");
}

#[test]
fn output_has_every_field_with_unset_messages_as_null() {
    let py = to_json(&task(), FieldNames::Proto);
    assert_eq!(py["err_code"], 0);
    assert_eq!(py["message"], "");
    assert_eq!(py["cancel_requested"], false);
    assert_eq!(py["previous_attempts"], json!([]));
    assert_eq!(py["finish_time"], serde_json::Value::Null);
    assert_eq!(py["output"], serde_json::Value::Null);
    let config = to_json(&pb::ModifyEventConfigRequest::default(), FieldNames::Proto);
    // proto3 `optional`: unset is null, not the default.
    assert_eq!(config["max_deliveries"], serde_json::Value::Null);
    assert_eq!(config["event_types"], json!({}));
    assert_eq!(config["mode"], "UNSPECIFIED");
}

#[test]
fn round_trips_in_both_spellings() {
    for names in [FieldNames::Proto, FieldNames::Json] {
        let tree = to_json(&task(), names);
        let back: pb::Task = from_json(&tree, names).expect("round trip");
        assert_eq!(back, task());
    }
}

#[test]
fn input_takes_either_spelling_full_enum_names_numbers_and_epoch_seconds() {
    let request: pb::ListTasksRequest = from_json(
        &json!({"status": "TASK_STATUS_FINISH", "taskType": 1, "file_id": "f",
                "create_time": {"after": 1.5, "before": "2026-12-07T13:00:00+01:00"}}),
        FieldNames::Json,
    )
    .expect("valid");
    assert_eq!(request.status, pb::TaskStatus::Finish as i32);
    assert_eq!(request.task_type, pb::TaskType::Transcode as i32);
    assert_eq!(request.file_id, "f");
    let range = request.create_time.expect("set");
    assert_eq!(
        range.after,
        Some(prost_types::Timestamp {
            seconds: 1,
            nanos: 500_000_000
        })
    );
    assert_eq!(range.before.map(|t| t.seconds), Some(1_796_644_800));
    let modify: pb::ModifyEventConfigRequest = from_json(
        &json!({"mode": "PUSH", "eventTypes": {"TranscodeComplete": false}, "maxDeliveries": null}),
        FieldNames::Json,
    )
    .expect("valid");
    assert_eq!(modify.mode, pb::DeliveryMode::Push as i32);
    assert_eq!(modify.event_types.get("TranscodeComplete"), Some(&false));
    assert_eq!(modify.max_deliveries, None);
}

#[test]
fn errors_name_the_path_and_the_rule() {
    let cases = [
        (
            json!({"spec": {"transcode": {"fileId": 5}}}),
            FieldNames::Json,
            "spec.transcode.fileId: expected a string, got number",
        ),
        (
            json!({"spec": {"transcode": {"file_id": "f", "definitions": [100010, 1.5]}}}),
            FieldNames::Proto,
            "spec.transcode.definitions[1]: expected a 32-bit integer, got 1.5",
        ),
        (
            json!({"spec": {"snapshotByTimeOffset": {"timeOffsetsMs": ["1000"]}}}),
            FieldNames::Json,
            "spec.snapshotByTimeOffset.timeOffsetsMs[0]: expected an integer, got string",
        ),
        (
            json!({"priority": 1_099_511_627_776_i64}),
            FieldNames::Json,
            "priority: expected a 32-bit integer, got 1099511627776",
        ),
        (
            json!({"spec": {"clip": {"startTimeOffset": "0"}}}),
            FieldNames::Json,
            "spec.clip.startTimeOffset: expected a number, got string",
        ),
        (
            json!({"spec": {"imageSprites": true}}),
            FieldNames::Json,
            "spec.imageSprites: expected an object, got boolean",
        ),
        (
            json!({"spec": {"deleteMedia": {"fileIds": [null]}}}),
            FieldNames::Json,
            "spec.deleteMedia.fileIds[0]: expected a string, got null",
        ),
        (
            json!({"spec": {"transcode": {"fileid": "f"}}}),
            FieldNames::Proto,
            "spec.transcode.fileid: unknown field; expected one of file_id, definitions",
        ),
        (
            json!({"spec": {"transcode": {}, "clip": {}}}),
            FieldNames::Proto,
            "spec: only one of transcode, clip may be set",
        ),
    ];
    for (request, names, message) in cases {
        assert_eq!(
            error_of(from_json::<pb::CreateTaskRequest>(&request, names)),
            message
        );
    }
    assert_eq!(
        error_of(from_json::<pb::ListTasksRequest>(
            &json!({"status": "DONE"}),
            FieldNames::Proto
        )),
        r#"status: expected one of WAITING, PROCESSING, FINISH, ABORTED, got "DONE""#
    );
    assert_eq!(
        error_of(from_json::<pb::ListTasksRequest>(
            &json!({"create_time": {"after": true}}),
            FieldNames::Proto
        )),
        "create_time.after: expected an RFC 3339 string or seconds since the epoch, got boolean"
    );
    assert_eq!(
        error_of(from_json::<pb::ModifyEventConfigRequest>(
            &json!({"eventTypes": {"TranscodeComplete": "yes"}}),
            FieldNames::Json
        )),
        "eventTypes.TranscodeComplete: expected a boolean, got string"
    );
    assert_eq!(
        error_of(from_json::<pb::ConfirmEventsRequest>(
            &json!({"msg_handles": "h"}),
            FieldNames::Proto
        )),
        "msg_handles: expected an array, got string"
    );
    assert_eq!(
        error_of(from_json::<pb::ConfirmEventsRequest>(
            &json!("h"),
            FieldNames::Proto
        )),
        "request: expected an object, got string"
    );
}
