"""The generic codec (vodtask/_codec.py) and the declared types, without a
server: decoding what the native module sends, checking what users pass,
encoding requests, typed event data, and the enums."""

from __future__ import annotations

import builtins
import datetime
import json
import pickle
from typing import Any, Optional

import pytest

import vodtask
from vodtask._codec import ConvertError, camel, convert, decoder, encode, parse_time
from vodtask._event_data import decode_event_data

UTC = datetime.timezone.utc


def test_times_parse_as_aware_utc_datetimes() -> None:
    assert parse_time("2026-12-07T12:14:52.123Z") == datetime.datetime(2026, 12, 7, 12, 14, 52, 123000, UTC)
    assert parse_time("2026-12-07T12:14:52Z") == datetime.datetime(2026, 12, 7, 12, 14, 52, tzinfo=UTC)
    # Nanoseconds are cut to microseconds; another offset comes back in UTC.
    assert parse_time("2026-12-07T12:14:52.123456789Z").microsecond == 123456
    shifted = parse_time("2026-12-07T14:14:52.5+02:00")
    assert shifted == datetime.datetime(2026, 12, 7, 12, 14, 52, 500000, UTC)
    assert shifted.tzinfo is UTC
    assert parse_time("2026-12-07T12:14:52-01:30").hour == 13


def test_decoding_fills_what_is_missing_and_ignores_what_is_unknown() -> None:
    task = decoder(vodtask.Task)(
        {
            "task_id": "transcode-1",
            "task_type": "TRANSCODE",
            "status": "FINISH",
            "create_time": "2026-12-07T12:00:00Z",
            "finish_time": None,
            "input": {"transcode": {"file_id": "f", "definitions": [100010]}},
            "output": {"transcode": {"play_set": [{"definition": 100010, "url": "u", "size": 7}]}},
            "a_field_of_a_newer_server": 1,
        }
    )
    assert task.status is vodtask.TaskStatus.FINISH
    assert task.create_time == datetime.datetime(2026, 12, 7, 12, tzinfo=UTC)
    assert (task.finish_time, task.err_code, task.message, task.previous_attempts) == (None, 0, "", [])
    assert task.input == vodtask.transcode("f", [100010])
    assert task.output is not None and task.output.kind == "transcode"
    assert task.output.transcode is not None
    (item,) = task.output.transcode.play_set
    assert (item.definition, item.url, item.size, item.duration_seconds) == (100010, "u", 7, 0.0)
    assert isinstance(item.duration_seconds, float)


def test_an_enum_value_this_package_does_not_know_stays_a_string() -> None:
    task = decoder(vodtask.Task)({"status": "SUSPENDED"})
    assert task.status == "SUSPENDED"
    assert task.task_type is vodtask.TaskType.UNSPECIFIED


def test_enums_are_real_enums_that_equal_their_names() -> None:
    assert list(vodtask.TaskStatus) == [
        vodtask.TaskStatus.UNSPECIFIED,
        vodtask.TaskStatus.WAITING,
        vodtask.TaskStatus.PROCESSING,
        vodtask.TaskStatus.FINISH,
        vodtask.TaskStatus.ABORTED,
    ]
    finish = vodtask.TaskStatus["FINISH"]
    assert finish is vodtask.TaskStatus.FINISH and finish.name == "FINISH"
    assert finish == "FINISH" and vodtask.TaskStatus("FINISH") is finish
    assert pickle.loads(pickle.dumps(finish)) is finish
    assert str(finish) == "TaskStatus.FINISH" and f"{finish}" == "TaskStatus.FINISH"
    assert json.dumps({"status": finish}) == '{"status": "FINISH"}'
    by_name: dict[str, int] = {vodtask.TaskType.CLIP: 1}
    assert by_name["CLIP"] == 1
    for cls in (
        vodtask.DeliveryMode, vodtask.NotifyMode, vodtask.FileType, vodtask.PositionType,
        vodtask.SubtaskStatus, vodtask.HandleStatus, vodtask.CircuitState, vodtask.AttemptOutcome,
        vodtask.SourceType, vodtask.TaskSortBy, vodtask.SortOrder,
    ):  # fmt: skip
        assert all(member.value == member.name for member in cls)


def test_results_are_frozen_dataclasses_that_pickle() -> None:
    spec = vodtask.procedure("f", [{"cover_by_snapshot": {"definition": 10, "position_type": "percent", "position": 50}}])
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(AttributeError):
        spec.procedure = None  # type: ignore[misc]
    assert spec.procedure is not None
    (subtask,) = spec.procedure.subtasks
    assert subtask.cover_by_snapshot == vodtask.CoverBySnapshotSubtask(10, vodtask.PositionType.PERCENT, 50.0)


def test_user_values_are_checked_with_their_path() -> None:
    def error(tp: Any, value: Any) -> str:
        with pytest.raises(ConvertError) as raised:
            convert(tp, value, "x")
        return str(raised.value)

    assert error(str, 5) == "x: expected a string, got int"
    assert error(int, True) == "x: expected an integer, got bool"
    assert error(int, 1.5) == "x: expected an integer, got float"
    assert error(list[int], "12") == "x: expected a list, got str"
    assert error(list[int], [1, "2"]) == "x[1]: expected an integer, got str"
    assert error(vodtask.FileType, "AVI") == "x: expected one of MP4, M3U8, got 'AVI'"
    assert error(vodtask.SubtaskSpec, {"transcod": {}}) == (
        "x.transcod: unknown field; expected one of transcode, snapshot_by_time_offset, image_sprites, cover_by_snapshot"
    )
    assert error(vodtask.SubtaskSpec, {"transcode": {"definition": "10"}}) == (
        "x.transcode.definition: expected an integer, got str"
    )
    assert convert(float, 2, "x") == 2.0 and isinstance(convert(float, 2, "x"), float)
    assert convert(vodtask.SortOrder, "asc", "x") is vodtask.SortOrder.ASC
    assert convert(vodtask.TaskSortBy, "finish_time", "x") is vodtask.TaskSortBy.FINISH_TIME
    assert convert(vodtask.TaskStatus, "TASK_STATUS_WAITING", "x") is vodtask.TaskStatus.WAITING
    assert convert(Optional[int], None, "x") is None


def test_spec_functions_name_themselves_and_the_field() -> None:
    with pytest.raises(vodtask.InvalidArgument) as raised:
        vodtask.transcode(5, [100010])  # type: ignore[arg-type]
    assert raised.value.code == "INVALID_ARGUMENT"
    assert raised.value.message == "transcode: file_id: expected a string, got int"
    with pytest.raises(vodtask.InvalidArgument, match=r"^pull_upload: procedure\.subtasks\[0\]\.transcode\.definiton: unknown field; expected one of definition$"):
        vodtask.pull_upload("http://x/a.mp4", procedure=[{"transcode": {"definiton": 1}}])


def test_encoding_leaves_unset_fields_out() -> None:
    spec = vodtask.pull_upload("http://x/a.mp4", procedure=[{"transcode": {"definition": 100010}}])
    assert spec.kind == "pull_upload"
    assert spec.to_dict() == {
        "pull_upload": {
            "media_url": "http://x/a.mp4",
            "file_name": "",
            "source_context": "",
            "timeout_seconds": 0,
            "procedure": {"subtasks": [{"transcode": {"definition": 100010}}], "notify_mode": "FINISH"},
        }
    }
    assert encode(datetime.datetime(2026, 1, 2, 3, 4, 5, 6, UTC)) == "2026-01-02T03:04:05.000006+00:00"
    naive = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert datetime.datetime.fromisoformat(encode(naive)).timestamp() == naive.timestamp()


def test_camel_case_keys() -> None:
    assert [camel(n) for n in ("vod_task_id", "meta_data", "web_vtt_url", "url")] == [
        "vodTaskId", "metaData", "webVttUrl", "url",
    ]  # fmt: skip


def envelope(event_type: str, data: dict[str, Any]) -> str:
    return json.dumps({"version": "4.0", "eventType": event_type, "eventId": "ev-1", "data": data})


def test_event_data_is_typed_per_event_type() -> None:
    done = decode_event_data(
        "TranscodeComplete",
        envelope(
            "TranscodeComplete",
            {"vodTaskId": "transcode-1", "status": 0, "message": "", "sessionContext": "s", "fileId": "f",
             "fileName": "a.mp4", "duration": 2, "coverUrl": "",
             "playSet": [{"url": "u", "definition": 100010, "vbitrate": 1, "vheight": 360, "vwidth": 640}]},
        ),
    )  # fmt: skip
    assert isinstance(done, vodtask.TranscodeCompleteData)
    assert (done.vod_task_id, done.session_context, done.duration) == ("transcode-1", "s", 2.0)
    assert done.play_set == [vodtask.PlaySetItem("u", 100010, 1, 360, 640)]

    failed = decode_event_data("TranscodeComplete", envelope("TranscodeComplete", {"vodTaskId": "t", "status": 70003}))
    assert isinstance(failed, vodtask.TranscodeCompleteData)
    assert (failed.status, failed.play_set, failed.file_name) == (70003, [], "")

    clip = decode_event_data("ClipComplete", envelope("ClipComplete", {"srcFileId": "f", "fileInfo": {"fileType": "mp4", "fileUrl": "u"}}))
    assert isinstance(clip, vodtask.ClipCompleteData)
    assert (clip.src_file_id, clip.file_info.file_type, clip.file_info.file_url) == ("f", "mp4", "u")

    procedure = decode_event_data(
        "ProcedureStateChanged",
        envelope(
            "ProcedureStateChanged",
            {"vodTaskId": "procedure-1", "status": "FINISH", "errCode": 0, "metaData": {"size": 3, "md5": "m"},
             "processTaskList": [
                 {"taskType": "SnapshotByTimeOffset", "status": "SUCCESS", "input": {"definition": 10, "timeOffset": [0]},
                  "output": {"imgInfo": [{"timeOffset": 0, "url": "u", "status": 0}]}},
                 {"taskType": "CoverBySnapshot", "status": "FAIL", "input": {"positionType": "Percent", "position": 50},
                  "output": {}},
             ]},
        ),
    )  # fmt: skip
    assert isinstance(procedure, vodtask.ProcedureStateChangedData)
    assert procedure.meta_data is not None
    assert (procedure.meta_data.size, procedure.meta_data.video_stream_list) == (3, [])
    snapshot, cover = procedure.process_task_list
    assert snapshot.input.time_offset == [0] and snapshot.output.img_info == [vodtask.PicInfo(0, "u", 0)]
    assert (cover.input.position_type, cover.input.position, cover.output.image_url) == ("Percent", 50.0, "")
    no_file = decode_event_data("ProcedureStateChanged", envelope("ProcedureStateChanged", {"metaData": None}))
    assert isinstance(no_file, vodtask.ProcedureStateChangedData) and no_file.meta_data is None

    uploaded = decode_event_data("NewFileUpload", envelope("NewFileUpload", {"fileId": "f", "sourceType": "ClientUpload"}))
    assert uploaded == vodtask.NewFileUploadData("f", "", "", "", "ClientUpload", "", "")
    # A type this package does not know yet: the data as sent.
    assert decode_event_data("SomethingNew", envelope("SomethingNew", {"fooBar": 1})) == {"fooBar": 1}


def test_no_export_shadows_a_builtin() -> None:
    assert not set(vodtask.__all__) & set(dir(builtins))
    assert "open" not in vodtask.__all__
    assert callable(vodtask.open)
    for name in vodtask.__all__:
        assert hasattr(vodtask, name), name
