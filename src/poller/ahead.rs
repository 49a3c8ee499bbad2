//! Page requests of a walk sent ahead of the page being counted.

use std::collections::VecDeque;

use tokio::task::JoinHandle;

use crate::emnify::{ApiError, EventPage, PageQuery};

/// Page requests sent ahead of the page being counted.
#[derive(Default)]
pub(super) struct Ahead {
    pages: VecDeque<(PageQuery, JoinHandle<Result<EventPage, ApiError>>)>,
}

impl Ahead {
    pub(super) fn len(&self) -> usize {
        self.pages.len()
    }

    pub(super) fn has(&self, query: &PageQuery) -> bool {
        self.pages.iter().any(|(q, _)| q == query)
    }

    pub(super) fn push(&mut self, query: PageQuery, handle: JoinHandle<Result<EventPage, ApiError>>) {
        self.pages.push_back((query, handle));
    }

    /// The request for `query`, if it was sent ahead; requests sent ahead for pages the walk skipped
    /// are given up.
    pub(super) fn take(&mut self, query: &PageQuery) -> Option<JoinHandle<Result<EventPage, ApiError>>> {
        let at = self.pages.iter().position(|(q, _)| q == query)?;
        let (_, handle) = self.pages.remove(at)?;
        Some(handle)
    }

    /// Gives up the requests a walk that ended no longer needs.
    pub(super) fn abort(self) {
        for (_, handle) in self.pages {
            handle.abort();
        }
    }
}

/// The result of a spawned request.
pub(super) async fn joined(handle: JoinHandle<Result<EventPage, ApiError>>) -> Result<EventPage, ApiError> {
    handle.await.unwrap_or_else(|err| {
        Err(ApiError::Connection { endpoint: "event", message: format!("the request stopped: {err}") })
    })
}
