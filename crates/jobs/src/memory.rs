//! In-process backend (standalone mode): queues and dead letters in memory, lost when the process exits.

use std::{
    collections::{HashMap, VecDeque},
    pin::pin,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use crate::{DeadJob, Envelope};

/// Every queue of one process plus its dead letters.
#[derive(Debug, Default)]
pub(crate) struct MemoryQueue {
    state: Mutex<State>,
    /// Woken on every push so that idle consumers look again.
    pushed: Notify,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, Pending>,
    /// Oldest first.
    dead: Vec<DeadJob>,
}

#[derive(Debug, Default)]
struct Pending {
    ready: VecDeque<Envelope>,
    delayed: Vec<(Instant, Envelope)>,
}

impl MemoryQueue {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a panic elsewhere does not poison it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn enqueue(&self, name: &str, envelope: Envelope, delay: Option<Duration>) {
        {
            let mut state = self.state();
            let pending = state.queues.entry(name.to_owned()).or_default();
            match delay {
                Some(delay) if !delay.is_zero() => {
                    pending.delayed.push((Instant::now() + delay, envelope));
                }
                _ => pending.ready.push_back(envelope),
            }
        }
        self.pushed.notify_waiters();
    }

    /// Puts jobs taken from queue `name` but never finished back at its head.
    pub(crate) fn give_back(&self, name: &str, envelopes: impl IntoIterator<Item = Envelope>) {
        {
            let mut state = self.state();
            let pending = state.queues.entry(name.to_owned()).or_default();
            for envelope in envelopes {
                pending.ready.push_front(envelope);
            }
        }
        self.pushed.notify_waiters();
    }

    /// The next job of queue `name`, or when the earliest delayed job becomes due.
    fn take(&self, name: &str) -> Result<Envelope, Option<Instant>> {
        let mut state = self.state();
        let Some(pending) = state.queues.get_mut(name) else {
            return Err(None);
        };
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut pending.delayed)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        pending.delayed = waiting;
        let mut due = due;
        due.sort_by_key(|(at, _)| *at);
        pending
            .ready
            .extend(due.into_iter().map(|(_, envelope)| envelope));
        pending
            .ready
            .pop_front()
            .ok_or_else(|| pending.delayed.iter().map(|(at, _)| *at).min())
    }

    /// Waits for the next job of queue `name`; looks again at least every `poll`.
    pub(crate) async fn next(&self, name: &str, poll: Duration) -> Envelope {
        loop {
            // Registered before looking, so a push between the look and the wait still wakes us.
            let mut pushed = pin!(self.pushed.notified());
            pushed.as_mut().enable();
            let wait = match self.take(name) {
                Ok(envelope) => return envelope,
                Err(Some(due)) => due.saturating_duration_since(Instant::now()).min(poll),
                Err(None) => poll,
            };
            tokio::select! {
                () = pushed => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    pub(crate) fn depth(&self, name: &str) -> u64 {
        self.state().queues.get(name).map_or(0, |pending| {
            u64::try_from(pending.ready.len() + pending.delayed.len()).unwrap_or(u64::MAX)
        })
    }

    pub(crate) fn bury(&self, job: DeadJob) {
        let mut state = self.state();
        state.dead.retain(|dead| dead.id != job.id);
        state.dead.push(job);
    }

    /// Up to `limit` dead jobs, newest first, and how many there are.
    pub(crate) fn dead(&self, limit: usize) -> (Vec<DeadJob>, u64) {
        let state = self.state();
        let jobs = state.dead.iter().rev().take(limit).cloned().collect();
        (jobs, u64::try_from(state.dead.len()).unwrap_or(u64::MAX))
    }

    /// Moves dead job `id` back to its queue; its job name if it was dead.
    pub(crate) fn redrive(&self, id: &str) -> Option<String> {
        let job = self.remove_dead(id)?;
        let envelope = Envelope {
            id: job.id,
            attempt: 1,
            payload: job.payload,
            // A re-drive is the admin's request: its trace, if any, follows the job.
            trace_context: cybervpn_telemetry::current_traceparent(),
        };
        self.enqueue(&job.name, envelope, None);
        Some(job.name)
    }

    pub(crate) fn discard(&self, id: &str) -> bool {
        self.remove_dead(id).is_some()
    }

    fn remove_dead(&self, id: &str) -> Option<DeadJob> {
        let mut state = self.state();
        let index = state.dead.iter().position(|dead| dead.id == id)?;
        Some(state.dead.remove(index))
    }

    #[cfg(test)]
    pub(crate) fn take_delayed(&self, name: &str) -> Vec<(Instant, Envelope)> {
        self.state()
            .queues
            .get_mut(name)
            .map(|pending| std::mem::take(&mut pending.delayed))
            .unwrap_or_default()
    }
}
