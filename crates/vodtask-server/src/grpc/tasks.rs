//! TaskService: authenticate, convert, call the engine.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vodtask_core::Engine;
use vodtask_core::ids::TaskId;
use vodtask_core::task::TaskRequest;
use vodtask_core::task::query::TaskQuery;
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::task_service_server::TaskService;

use super::auth::app_of;
use super::convert;
use super::status::to_status;

pub(crate) struct Tasks {
    pub(crate) engine: Engine,
}

fn task_id(raw: &str) -> Result<TaskId, Status> {
    TaskId::parse("task_id", raw).map_err(to_status)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchTaskResponse, Status>> + Send>>;

#[tonic::async_trait]
impl TaskService for Tasks {
    type WatchTaskStream = WatchStream;

    async fn watch_task(
        &self,
        req: Request<pb::WatchTaskRequest>,
    ) -> Result<Response<Self::WatchTaskStream>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let id = task_id(&req.get_ref().task_id)?;
        // An unknown task is NOT_FOUND before the stream starts.
        self.engine
            .describe_task(app, &id)
            .await
            .map_err(to_status)?;
        let updates = self.engine.watch_task(app, id).map(|update| {
            update
                .map(|u| pb::WatchTaskResponse {
                    task: Some(convert::task(&u.task)),
                    ended: u.ended,
                })
                .map_err(to_status)
        });
        Ok(Response::new(Box::pin(updates)))
    }

    async fn create_task(
        &self,
        req: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::CreateTaskResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let request = TaskRequest::new(
            convert::spec(r.spec)?,
            r.priority,
            r.session_id,
            r.session_context,
        )
        .map_err(to_status)?;
        let id = self
            .engine
            .create_task(app, request)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateTaskResponse {
            task_id: id.to_string(),
        }))
    }

    async fn describe_task(
        &self,
        req: Request<pb::DescribeTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let id = task_id(&req.get_ref().task_id)?;
        let task = self
            .engine
            .describe_task(app, &id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(convert::task(&task)))
    }

    async fn list_tasks(
        &self,
        req: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let file_id = (!r.file_id.is_empty())
            .then(|| convert::file_id("file_id", &r.file_id))
            .transpose()?;
        let query = TaskQuery::new(
            convert::status_filter(r.status)?,
            convert::type_filter(r.task_type)?,
            file_id,
            convert::time_range("create_time", r.create_time.as_ref())?,
            convert::time_range("finish_time", r.finish_time.as_ref())?,
            convert::sort_by(r.sort_by)?,
            convert::order(r.order)?,
            i64::from(r.limit),
            &r.scroll_token,
        )
        .map_err(to_status)?;
        let page = self
            .engine
            .list_tasks(app, &query)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: page.tasks.iter().map(convert::task).collect(),
            scroll_token: page.scroll_token,
        }))
    }

    async fn get_task_overview(
        &self,
        req: Request<pb::GetTaskOverviewRequest>,
    ) -> Result<Response<pb::GetTaskOverviewResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let range = convert::time_range("create_time", req.get_ref().create_time.as_ref())?;
        let overview = self.engine.overview(app, range).await.map_err(to_status)?;
        Ok(Response::new(convert::overview(&overview)))
    }

    async fn redo_task(
        &self,
        req: Request<pb::RedoTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let id = task_id(&req.get_ref().task_id)?;
        let task = self.engine.redo_task(app, &id).await.map_err(to_status)?;
        Ok(Response::new(convert::task(&task)))
    }

    async fn cancel_task(
        &self,
        req: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let id = task_id(&req.get_ref().task_id)?;
        let task = self.engine.cancel_task(app, &id).await.map_err(to_status)?;
        Ok(Response::new(convert::task(&task)))
    }
}
