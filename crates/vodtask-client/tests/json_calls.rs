//! `Client::call_json` against an engine in this process: any unary RPC by
//! name, with the same validation and errors as the typed calls.

// A failed unwrap is a failed test, with its reason in the panic.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use vodtask_client::json::FieldNames;
use vodtask_client::{Client, OpenOptions};

async fn open() -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        workers: Some(1),
        ..OpenOptions::default()
    };
    let client = Client::open(dir.path(), options).await.unwrap();
    (dir, client)
}

#[tokio::test]
async fn unary_calls_by_name_in_both_spellings() {
    let (_dir, client) = open().await;
    let upload = client
        .upload_bytes(b"not media".to_vec(), "a.txt", "ctx", None)
        .await
        .unwrap();

    let media = client
        .call_json(
            "DescribeMedia",
            &json!({"fileId": upload.file_id}),
            FieldNames::Json,
        )
        .await
        .unwrap();
    assert_eq!(media["fileName"], "a.txt");
    assert_eq!(media["sourceType"], "CLIENT_UPLOAD");
    assert_eq!(media["size"], 9);
    assert!(
        media["createTime"].as_str().unwrap().ends_with('Z'),
        "{media}"
    );

    let config = client
        .call_json(
            "ModifyEventConfig",
            &json!({"visibility_timeout_seconds": 45, "event_types": {"NewFileUpload": false}}),
            FieldNames::Proto,
        )
        .await
        .unwrap();
    assert_eq!(config["visibility_timeout_seconds"], 45);
    assert_eq!(config["mode"], "PULL");
    assert_eq!(config["event_types"]["NewFileUpload"], false);

    let task_id = client
        .call_json(
            "CreateTask",
            &json!({"spec": {"delete_media": {"file_ids": [upload.file_id]}}}),
            FieldNames::Proto,
        )
        .await
        .unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = client.wait_task(&task_id).await.unwrap();
    assert_eq!(task.err_code, 0, "{task:?}");
    let described = client
        .call_json(
            "DescribeTask",
            &json!({"task_id": task_id}),
            FieldNames::Proto,
        )
        .await
        .unwrap();
    assert_eq!(described["status"], "FINISH");
    assert_eq!(described["task_type"], "DELETE_MEDIA");
    client.close().await;
}

#[tokio::test]
async fn errors_keep_the_service_code_or_name_the_field() {
    let (_dir, client) = open().await;
    let missing = client
        .call_json(
            "DescribeTask",
            &json!({"taskId": "transcode-nope"}),
            FieldNames::Json,
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code_name(), "NOT_FOUND", "{missing}");

    let invalid = client
        .call_json("DescribeTask", &json!({"taskId": 7}), FieldNames::Json)
        .await
        .unwrap_err();
    assert_eq!(invalid.code_name(), "INVALID_ARGUMENT");
    assert_eq!(invalid.to_string(), "taskId: expected a string, got number");

    for (method, rule) in [
        (
            "UploadMedia",
            "method: UploadMedia streams; the client has its own call for it",
        ),
        (
            "WatchTask",
            "method: WatchTask streams; the client has its own call for it",
        ),
        (
            "Nope",
            r#"method: "Nope" is not an RPC of the vodtask contract"#,
        ),
    ] {
        let e = client
            .call_json(method, &json!({}), FieldNames::Json)
            .await
            .unwrap_err();
        assert_eq!(e.code_name(), "INVALID_ARGUMENT");
        assert_eq!(e.to_string(), rule);
    }
    client.close().await;
}
