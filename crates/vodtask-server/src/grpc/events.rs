//! EventService: the per-app reliable queue over gRPC.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use vodtask_core::StreamItem;
use vodtask_core::callbacks::{AttemptOutcome, AttemptsOf, CallbackAttempt};
use vodtask_core::events::{
    Delivery, DeliveryMode, Event, EventConfig, EventConfigPatch, EventType, HandleResult,
};
use vodtask_core::ids::TaskId;
use vodtask_core::limits::{self, Bound};
use vodtask_core::{CircuitState, EndpointHealth, Engine};
use vodtask_proto::v1 as pb;
use vodtask_proto::v1::event_service_server::EventService;

use super::auth::app_of;
use super::convert::timestamp;
use super::status::{invalid, to_status};

pub(crate) struct Events {
    pub(crate) engine: Engine,
}

impl Events {
    fn config_with_health(
        &self,
        app: vodtask_core::ids::AppId,
        c: &EventConfig,
    ) -> pb::EventConfig {
        pb::EventConfig {
            endpoint_health: self.engine.endpoint_health(app).map(health_to_pb),
            ..config_to_pb(c)
        }
    }
}

fn event(e: Event) -> pb::Event {
    pb::Event {
        event_time: Some(timestamp(e.event_time)),
        event_id: e.event_id,
        event_type: e.event_type,
        task_id: e.task_id,
        task_sequence: e.task_sequence,
        content_json: e.content_json,
        delivery_count: e.deliveries as i32,
    }
}

fn delivery(d: Delivery) -> pb::EventDelivery {
    pb::EventDelivery {
        msg_handle: d.handle.encode(),
        event: Some(event(d.event)),
    }
}

fn results(
    handles: Vec<String>,
    results: Vec<HandleResult>,
    done: pb::HandleStatus,
) -> pb::SettleEventsResponse {
    pb::SettleEventsResponse {
        results: handles
            .into_iter()
            .zip(results)
            .map(|(msg_handle, r)| pb::HandleResult {
                msg_handle,
                status: match r {
                    HandleResult::Done => done,
                    HandleResult::AlreadyConfirmed => pb::HandleStatus::AlreadyConfirmed,
                    HandleResult::Expired => pb::HandleStatus::Expired,
                    HandleResult::Unknown => pb::HandleStatus::Unknown,
                } as i32,
            })
            .collect(),
    }
}

/// A field checked against its bound (`vodtask_core::limits`), whose
/// message states the rule.
fn bounded<T: Into<i64>>(bound: Bound, value: T) -> Result<Duration, Status> {
    bound.seconds(value.into()).map_err(to_status)
}

fn count<T: Into<i64>>(bound: Bound, value: T) -> Result<u32, Status> {
    bound.check_u32(value.into()).map_err(to_status)
}

fn config_to_pb(c: &EventConfig) -> pb::EventConfig {
    pb::EventConfig {
        mode: match c.mode {
            DeliveryMode::Pull => pb::DeliveryMode::Pull,
            DeliveryMode::Push => pb::DeliveryMode::Push,
        } as i32,
        notification_url: c.notification_url.clone(),
        event_types: EventType::ALL
            .into_iter()
            .map(|t| (t.as_str().to_string(), c.enabled(t)))
            .collect::<HashMap<_, _>>(),
        visibility_timeout_seconds: c.visibility_timeout.as_secs() as i32,
        max_deliveries: c.max_deliveries as i32,
        retention_seconds: c.retention.as_secs() as i64,
        signing_secret: c.secrets.current.clone(),
        previous_secret_expire_time: previous_secret_expiry(c),
        callback_timeout_seconds: c.callback_timeout.as_secs() as i32,
        retry_schedule_seconds: c
            .retry_schedule
            .iter()
            .map(|d| d.as_secs() as i64)
            .collect(),
        disable_after_seconds: c.disable_after.as_secs() as i64,
        endpoint_disabled_time: c.endpoint_disabled.map(timestamp),
        endpoint_health: None,
    }
}

fn health_to_pb(h: EndpointHealth) -> pb::EndpointHealth {
    pb::EndpointHealth {
        circuit: match h.circuit {
            CircuitState::Closed => pb::CircuitState::Closed,
            CircuitState::Open => pb::CircuitState::Open,
            CircuitState::HalfOpen => pb::CircuitState::HalfOpen,
        } as i32,
        consecutive_failures: h.consecutive_failures as i32,
        failing_since: h.failing_since.map(timestamp),
        last_failure_time: h.last_failure.as_ref().map(|(t, _)| timestamp(*t)),
        last_failure: h.last_failure.map(|(_, why)| why).unwrap_or_default(),
    }
}

fn previous_secret_expiry(c: &EventConfig) -> Option<prost_types::Timestamp> {
    c.secrets
        .previous
        .as_ref()
        .filter(|p| p.until > vodtask_core::time::now())
        .map(|p| timestamp(p.until))
}

fn attempt_to_pb(a: CallbackAttempt) -> pb::CallbackAttempt {
    pb::CallbackAttempt {
        event_id: a.event_id,
        attempt: a.attempt as i32,
        time: Some(timestamp(a.time)),
        url: a.url,
        http_status: a.http_status.map_or(0, i32::from),
        error: a.error,
        duration_seconds: a.duration.as_secs_f64(),
        response: a.response,
        outcome: match a.outcome {
            AttemptOutcome::Delivered => pb::AttemptOutcome::Delivered,
            AttemptOutcome::Failed => pb::AttemptOutcome::Failed,
            AttemptOutcome::Gone => pb::AttemptOutcome::Gone,
        } as i32,
        next_attempt_time: a.next_attempt.map(timestamp),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeEventsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for Events {
    async fn pull_events(
        &self,
        req: Request<pb::PullEventsRequest>,
    ) -> Result<Response<pb::PullEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let max = count(limits::PULL_MAX_EVENTS, r.max_events)?;
        let wait = r
            .wait_seconds
            .map(|w| bounded(limits::PULL_WAIT, w))
            .transpose()?;
        let got = self
            .engine
            .pull_events(app, max, wait)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PullEventsResponse {
            events: got.into_iter().map(delivery).collect(),
        }))
    }

    type SubscribeEventsStream = EventStream;

    async fn subscribe_events(
        &self,
        req: Request<pb::SubscribeEventsRequest>,
    ) -> Result<Response<Self::SubscribeEventsStream>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let max = count(limits::MAX_IN_FLIGHT, req.get_ref().max_in_flight)?;
        let subscription = self.engine.subscribe(app, max).await.map_err(to_status)?;
        // The response body polls the subscription itself, with no task or
        // channel between them: credit that a confirm gives back wakes the
        // task that writes this stream, and whatever the subscription took
        // at once is encoded into one frame. When the client goes away the
        // body is dropped, and with it the subscription, which releases its
        // leases.
        let stream = futures::stream::unfold(Some(subscription), |state| async move {
            let mut subscription = state?;
            let message = match subscription.next().await {
                Ok(Some(StreamItem::Delivery(d))) => Ok(pb::SubscribeEventsResponse {
                    item: Some(pb::subscribe_events_response::Item::Delivery(delivery(d))),
                }),
                Ok(Some(StreamItem::Heartbeat)) => Ok(pb::SubscribeEventsResponse {
                    item: Some(pb::subscribe_events_response::Item::Heartbeat(
                        pb::Heartbeat {
                            time: Some(timestamp(vodtask_core::time::now())),
                        },
                    )),
                }),
                Ok(None) => Err(Status::unavailable("vodtask is shutting down; reconnect")),
                Err(e) => Err(to_status(e)),
            };
            // An error is the stream's last message.
            let next = message.is_ok().then_some(subscription);
            Some((message, next))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn confirm_events(
        &self,
        req: Request<pb::ConfirmEventsRequest>,
    ) -> Result<Response<pb::SettleEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let handles = req.into_inner().msg_handles;
        let r = self
            .engine
            .confirm_events(app, handles.clone())
            .await
            .map_err(to_status)?;
        Ok(Response::new(results(
            handles,
            r,
            pb::HandleStatus::Confirmed,
        )))
    }

    async fn extend_events(
        &self,
        req: Request<pb::ExtendEventsRequest>,
    ) -> Result<Response<pb::SettleEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let secs = count(limits::EXTEND, r.seconds)?;
        let out = self
            .engine
            .extend_events(app, r.msg_handles.clone(), secs)
            .await
            .map_err(to_status)?;
        Ok(Response::new(results(
            r.msg_handles,
            out,
            pb::HandleStatus::Extended,
        )))
    }

    async fn nack_events(
        &self,
        req: Request<pb::NackEventsRequest>,
    ) -> Result<Response<pb::SettleEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let delay = r
            .delay_seconds
            .map(|d| bounded(limits::NACK_DELAY, d))
            .transpose()?;
        let out = self
            .engine
            .nack_events(app, r.msg_handles.clone(), delay)
            .await
            .map_err(to_status)?;
        Ok(Response::new(results(
            r.msg_handles,
            out,
            pb::HandleStatus::Nacked,
        )))
    }

    async fn list_dead_letter_events(
        &self,
        req: Request<pb::ListDeadLetterEventsRequest>,
    ) -> Result<Response<pb::ListDeadLetterEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let limit = count(limits::DEAD_LETTER_LIMIT, r.limit)?;
        let after = match r.page_token.as_str() {
            "" => None,
            t => Some(
                t.parse::<i64>()
                    .map_err(|_| invalid("page_token", "is not a token this call returned"))?,
            ),
        };
        let page = self
            .engine
            .dead_letter_events(app, limit, after)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListDeadLetterEventsResponse {
            events: page.events.into_iter().map(event).collect(),
            next_page_token: page.next_after.map(|a| a.to_string()).unwrap_or_default(),
        }))
    }

    async fn redrive_events(
        &self,
        req: Request<pb::RedriveEventsRequest>,
    ) -> Result<Response<pb::RedriveEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let ids = match (r.all, r.event_ids.is_empty()) {
            (true, true) => None,
            (false, false) => Some(r.event_ids),
            (true, false) => return Err(invalid("all", "must not be set together with event_ids")),
            (false, true) => {
                return Err(invalid(
                    "event_ids",
                    "name the events to redrive, or set all",
                ));
            }
        };
        let n = self
            .engine
            .redrive_events(app, ids)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RedriveEventsResponse {
            redriven: n as i64,
        }))
    }

    async fn describe_events_state(
        &self,
        req: Request<pb::DescribeEventsStateRequest>,
    ) -> Result<Response<pb::DescribeEventsStateResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let s = self.engine.events_state(app).await.map_err(to_status)?;
        let age = s
            .oldest_unconfirmed
            .map(|t| (vodtask_core::time::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok(Response::new(pb::DescribeEventsStateResponse {
            ready: s.ready,
            in_flight: s.in_flight,
            delayed: s.delayed,
            dead_lettered: s.dead_lettered,
            oldest_unconfirmed_age_seconds: age,
        }))
    }

    async fn get_event_config(
        &self,
        req: Request<pb::GetEventConfigRequest>,
    ) -> Result<Response<pb::EventConfig>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let config = self.engine.event_config(app).await.map_err(to_status)?;
        Ok(Response::new(self.config_with_health(app, &config)))
    }

    async fn modify_event_config(
        &self,
        req: Request<pb::ModifyEventConfigRequest>,
    ) -> Result<Response<pb::EventConfig>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let mode = match pb::DeliveryMode::try_from(r.mode) {
            Ok(pb::DeliveryMode::Unspecified) => None,
            Ok(pb::DeliveryMode::Pull) => Some(DeliveryMode::Pull),
            Ok(pb::DeliveryMode::Push) => Some(DeliveryMode::Push),
            Err(_) => return Err(invalid("mode", format!("unknown delivery mode {}", r.mode))),
        };
        let patch = EventConfigPatch {
            mode,
            notification_url: r.notification_url,
            event_types: r.event_types.into_iter().collect(),
            visibility_timeout_seconds: r.visibility_timeout_seconds.map(i64::from),
            max_deliveries: r.max_deliveries.map(i64::from),
            retention_seconds: r.retention_seconds,
            callback_timeout_seconds: r.callback_timeout_seconds.map(i64::from),
            disable_after_seconds: r.disable_after_seconds,
            endpoint_enabled: r.endpoint_enabled,
            retry_schedule_seconds: r.retry_schedule_seconds,
        };
        let config = self
            .engine
            .modify_event_config(app, patch)
            .await
            .map_err(to_status)?;
        Ok(Response::new(self.config_with_health(app, &config)))
    }

    async fn rotate_signing_secret(
        &self,
        req: Request<pb::RotateSigningSecretRequest>,
    ) -> Result<Response<pb::RotateSigningSecretResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let overlap = req
            .into_inner()
            .overlap_seconds
            .map(|s| bounded(limits::SECRET_OVERLAP, s))
            .transpose()?;
        let c = self
            .engine
            .rotate_signing_secret(app, overlap)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RotateSigningSecretResponse {
            signing_secret: c.secrets.current.clone(),
            previous_secret_expire_time: previous_secret_expiry(&c),
        }))
    }

    async fn list_callback_attempts(
        &self,
        req: Request<pb::ListCallbackAttemptsRequest>,
    ) -> Result<Response<pb::ListCallbackAttemptsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let r = req.into_inner();
        let of = match (r.event_id.is_empty(), r.task_id.is_empty()) {
            (false, true) => {
                limits::check_token("event_id", &r.event_id, 128).map_err(to_status)?;
                AttemptsOf::Event(r.event_id)
            }
            (true, false) => {
                let id = TaskId::parse("task_id", &r.task_id).map_err(to_status)?;
                AttemptsOf::Task(id.as_str().to_owned())
            }
            _ => {
                return Err(invalid(
                    "event_id",
                    "give exactly one of event_id and task_id",
                ));
            }
        };
        let attempts = self
            .engine
            .callback_attempts(app, of)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListCallbackAttemptsResponse {
            attempts: attempts.into_iter().map(attempt_to_pb).collect(),
        }))
    }

    async fn resend_events(
        &self,
        req: Request<pb::ResendEventsRequest>,
    ) -> Result<Response<pb::ResendEventsResponse>, Status> {
        let app = app_of(&self.engine, req.metadata()).await?;
        let n = self
            .engine
            .resend_events(app, req.into_inner().event_ids)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ResendEventsResponse { resent: n as i64 }))
    }
}
