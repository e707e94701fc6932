//! Pull upload: downloads a URL into the media library, through the same
//! address policy as callbacks (no internal addresses unless allowed, every
//! redirect checked), within the task's timeout and the upload size limit.

use std::sync::Arc;
use std::time::Duration;

use super::{RunContext, RunResult, Stop, stored};
use crate::error::Error;
use crate::media::{Upload, validate_file_name};
use crate::outbound::{AddressPolicy, Redirects, describe_error, guarded_client, literal_ip};
use crate::task::Outcome;
use crate::task::procedure::ProcedureSpec;
use crate::task::{NewTask, PullSpec, TaskOutput, TaskRequest, TaskSpec, TaskType, errcode};
use crate::time;

const MAX_REDIRECTS: usize = 5;

/// The HTTP client of pulls.
pub(crate) struct Puller {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl Puller {
    pub(crate) fn new(policy: AddressPolicy) -> crate::Result<Puller> {
        let policy = Arc::new(policy);
        let client = guarded_client(Arc::clone(&policy), Redirects::Follow(MAX_REDIRECTS))?;
        Ok(Puller { client, policy })
    }
}

pub(super) async fn run(ctx: &RunContext<'_>, spec: &PullSpec) -> Result<RunResult, Stop> {
    let url = crate::outbound::validate_url("media_url", &spec.media_url)
        .map_err(|e| Stop::Failed(errcode::PULL_CONNECT_FAILED, e.to_string()))?;
    if let Some(ip) = literal_ip(&url)
        && !ctx.puller.policy.permits(ip)
    {
        return Err(Stop::Failed(
            errcode::PULL_CONNECT_FAILED,
            format!("address {ip} is not allowed (see --allow-outbound-cidr)"),
        ));
    }
    let file_name = spec.file_name.clone().unwrap_or_else(|| name_from(&url));
    let mut upload = ctx
        .library
        .begin_pull(
            ctx.task.app_id,
            &ctx.task.id,
            &file_name,
            &spec.source_context,
        )
        .await
        .map_err(stored)?;
    let timeout = Duration::from_secs(u64::from(spec.timeout_seconds));
    tokio::select! {
        _ = ctx.cancel.cancelled() => return Err(Stop::Cancelled),
        done = tokio::time::timeout(timeout, download(ctx, url, &mut upload)) => match done {
            Err(_) => {
                return Err(Stop::Failed(
                    errcode::PULL_TIMEOUT,
                    format!(
                        "the download did not finish within {} s ({} bytes received)",
                        spec.timeout_seconds,
                        upload.size()
                    ),
                ));
            }
            Ok(result) => result?,
        },
    }
    let media = upload.finish().await.map_err(stored)?;
    if let Err(reason) = &media.metadata {
        ctx.library.discard(&media.file_id).await;
        return Err(Stop::Failed(
            errcode::PROBE_FAILED,
            format!("the downloaded file is not media ffprobe can read: {reason}"),
        ));
    }
    // The procedure asked for is queued in the transaction that records the
    // file, so a file never lands without it.
    let follow_up = spec.procedure.as_ref().map(|plan| {
        Box::new(NewTask {
            id: TaskType::Procedure.new_id(),
            app_id: ctx.task.app_id,
            request: TaskRequest {
                spec: TaskSpec::Procedure(ProcedureSpec {
                    file_id: media.file_id.clone(),
                    plan: plan.clone(),
                }),
                priority: ctx.task.priority,
                session_id: None,
                session_context: ctx.task.session_context.clone(),
            },
            create_time: time::now(),
        })
    });
    let output = TaskOutput::PullUpload {
        file_id: media.file_id.clone(),
        file_url: ctx.library.url_of(&media.file_id, &media.stored_name),
        size: media.size,
        procedure_task_id: follow_up.as_ref().map(|t| t.id.to_string()),
    };
    Ok(RunResult::Done(Outcome::Finished {
        err_code: 0,
        message: String::new(),
        output: Some(output),
        new_media: vec![media],
        follow_up,
    }))
}

async fn download(ctx: &RunContext<'_>, url: url::Url, upload: &mut Upload) -> Result<(), Stop> {
    let broken = |e: reqwest::Error| {
        Stop::Failed(
            errcode::PULL_CONNECT_FAILED,
            describe_error(&e, Duration::ZERO),
        )
    };
    let mut response = ctx
        .puller
        .client
        .get(url.clone())
        .header(
            reqwest::header::USER_AGENT,
            concat!("vodtask/", env!("CARGO_PKG_VERSION")),
        )
        .send()
        .await
        .map_err(broken)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Stop::Failed(
            errcode::PULL_HTTP_ERROR,
            format!("{url} answered HTTP {status}"),
        ));
    }
    let expected = response.content_length();
    let limit = ctx.library.max_upload_bytes();
    if let Some(len) = expected
        && len > limit
    {
        return Err(too_large(len, limit));
    }
    while let Some(chunk) = response.chunk().await.map_err(broken)? {
        upload.write(&chunk).await.map_err(|e| match e {
            Error::ResourceExhausted(_) => too_large(upload.size(), limit),
            other => super::stored(other),
        })?;
        if let Some(len) = expected.filter(|l| *l > 0) {
            (ctx.on_progress)(upload.size() as f64 / len as f64);
        }
    }
    if upload.size() == 0 {
        return Err(Stop::Failed(
            errcode::PULL_HTTP_ERROR,
            format!("{url} answered with an empty body"),
        ));
    }
    Ok(())
}

fn too_large(size: u64, limit: u64) -> Stop {
    Stop::Failed(
        errcode::PULL_TOO_LARGE,
        format!("the file is larger than the limit of {limit} bytes (at least {size} bytes)"),
    )
}

/// The last segment of the URL's path, if it is a valid file name.
fn name_from(url: &url::Url) -> String {
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|n| validate_file_name("file_name", n).is_ok())
        .unwrap_or_else(|| "pulled".to_string())
}
