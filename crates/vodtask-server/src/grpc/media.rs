//! MediaService: streamed uploads into the library, and file descriptions.

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use vodtask_core::Engine;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::media_service_server::MediaService;
use vodtask_proto::v1::upload_media_request::Part;

use super::auth::app_of;
use super::convert;
use super::status::{invalid, to_status};

pub(crate) struct Media {
    pub(crate) engine: Engine,
}

#[tonic::async_trait]
impl MediaService for Media {
    async fn upload_media(
        &self,
        req: Request<Streaming<pb::UploadMediaRequest>>,
    ) -> Result<Response<pb::UploadMediaResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let mut parts = req.into_inner();
        let header = match parts.next().await.transpose()?.and_then(|m| m.part) {
            Some(Part::Header(h)) => h,
            _ => {
                return Err(invalid(
                    "header",
                    "the first message must carry the header (file_name)",
                ));
            }
        };
        let plan = header
            .procedure
            .map(|p| {
                let plan = convert::procedure_plan("header.procedure", p)?;
                plan.validate("header.procedure").map_err(to_status)?;
                Ok::<_, Status>(plan)
            })
            .transpose()?;
        // Dropped on any early return, or with this future (a client that
        // goes away, a deadline), the upload removes its temp file.
        let mut upload = self
            .engine
            .begin_upload(app, &header.file_name, &header.source_context)
            .await
            .map_err(to_status)?;
        while let Some(message) = parts.next().await {
            // A stream that ends with an error is never recorded.
            match message?.part {
                Some(Part::Chunk(bytes)) => upload.write(&bytes).await.map_err(to_status)?,
                Some(Part::Header(_)) => {
                    return Err(invalid(
                        "header",
                        "only the first message may carry the header",
                    ));
                }
                None => {}
            }
        }
        // tonic reports a client's cancel (RST_STREAM) as the end of the
        // stream; hyper sees the reset, and drops this future, only once the
        // future is pending. Pend once, so that a cut-off stream is dropped
        // here rather than stored as if whole.
        tokio::task::yield_now().await;
        // The stream ended whole. The commit runs on a task of its own so
        // that a client going away during it cannot leave a file placed in
        // the library without its row (the response is lost then, not the
        // file: the app still gets its FileUploaded event).
        let engine = self.engine.clone();
        let (media, procedure) =
            tokio::spawn(async move { engine.finish_upload(upload, plan).await })
                .await
                .map_err(|e| Status::internal(format!("storing the upload failed: {e}")))?
                .map_err(to_status)?;
        Ok(Response::new(pb::UploadMediaResponse {
            file_id: media.file_id.to_string(),
            file_url: self.engine.file_url(&media),
            procedure_task_id: procedure.map(|id| id.to_string()).unwrap_or_default(),
        }))
    }

    async fn describe_media(
        &self,
        req: Request<pb::DescribeMediaRequest>,
    ) -> Result<Response<pb::MediaInfo>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let file_id = convert::file_id("file_id", &req.get_ref().file_id)?;
        let media = self
            .engine
            .describe_media(app, &file_id)
            .await
            .map_err(to_status)?;
        let url = self.engine.file_url(&media);
        Ok(Response::new(convert::media(&media, url)))
    }
}
