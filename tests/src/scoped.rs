//! Each store of the in-process host ([`crate::partitioned`]): [`MemoryStore`] that holds every call of the dispatcher to
//! its endpoint's declared [`Scope`](model::http::Scope).
//!
//! Each request runs with a log of the store keys it reads and writes (a task-local, so that
//! requests racing on one instance keep their own); after it, every entry is checked with
//! `Scope::allows`. The contract run in process exercises every endpoint, so a scope that
//! says "one organization" of an endpoint that reads an email's record fails a case, naming
//! the endpoint and the key. That is what lets a host keep one store per organization and
//! one for the instance (the edge's objects) route each endpoint by its declaration alone.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::Mutex;

use model::http::{Endpoint, Scope};
use model::store::{Batch, Listing, MemoryStore, Store, StoreError};

tokio::task_local! {
    static TOUCHED: RefCell<Vec<(String, bool)>>;
}

/// The paths of the endpoints checked so far in this process ("METHOD path").
static CHECKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The endpoints of the table that no checked call has reached yet in this process.
pub fn unchecked() -> Vec<String> {
    let checked = CHECKED.lock().map(|c| c.clone()).unwrap_or_default();
    model::http::ENDPOINTS
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .filter(|e| !checked.contains(e))
        .collect()
}

/// [`MemoryStore`], logging what each request touches.
#[derive(Debug, Default, Clone)]
pub struct Scoped {
    inner: MemoryStore,
}

fn touch(key: &str, write: bool) {
    // Outside a request (the first start, the usage flush after it) nothing is logged.
    let _ = TOUCHED.try_with(|t| t.borrow_mut().push((key.to_owned(), write)));
}

impl Store for Scoped {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        touch(key, false);
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        touch(prefix, false);
        self.inner.list(prefix, cursor, limit).await
    }

    async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        for op in &batch.ops {
            touch(op.key(), true);
        }
        self.inner.commit(batch).await
    }
}

/// Runs `request` (a call of `endpoint`, or of no endpoint) and then fails if it touched a
/// key its endpoint's scope does not allow. A call that no endpoint matches (404, 405)
/// must touch nothing at all.
pub async fn checked<T>(
    endpoint: Option<&'static Endpoint>,
    request: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    let (answer, touched) = TOUCHED
        .scope(RefCell::default(), async {
            let answer = request.await;
            (answer, TOUCHED.with(|t| t.take()))
        })
        .await;
    if let (Some(e), Ok(mut checked)) = (endpoint, CHECKED.lock()) {
        checked.insert(format!("{} {}", e.method, e.path));
    }
    for (key, write) in touched {
        let allowed = endpoint.is_some_and(|e| e.scope().allows(&key, write));
        anyhow::ensure!(
            allowed,
            "{} {} `{key}`, which its scope {:?} does not allow",
            endpoint.map_or(
                "a request that no endpoint matches".to_owned(),
                |e| format!("{} {}", e.method, e.path)
            ),
            if write { "wrote" } else { "read" },
            endpoint.map(Endpoint::scope).unwrap_or(Scope::ReadPath),
        );
    }
    Ok(answer)
}

impl Scoped {
    /// The store itself, for the host's own lookups (not a request's calls: nothing logged).
    pub fn raw(&self) -> &MemoryStore {
        &self.inner
    }

    /// Every record of the store.
    pub async fn dump(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut records = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self.inner.list("", cursor.as_deref(), 1000).await?;
            for key in page.keys {
                if let Some(value) = self.inner.get(&key).await? {
                    records.push((key, value));
                }
            }
            match page.cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(records),
            }
        }
    }
}
