//! Single-flight: identical concurrent requests share one upstream call.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::key::RequestKey;

/// Where a value handed out by a `get_or_fetch` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// The memory tier.
    Memory,
    /// The persistent tier (SQLite or Redis); the value is now in memory too.
    Persistent,
    /// This call fetched it.
    Upstream,
    /// Another caller fetched it at the same time, and this call waited for that fetch.
    Shared,
}

impl Origin {
    /// Whether the value came from a cache tier, so no request was made for it (reports mark it "cached").
    pub fn is_cached(self) -> bool {
        matches!(self, Origin::Memory | Origin::Persistent)
    }

    /// `memory`, `persistent`, `upstream` or `shared`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Memory => "memory",
            Origin::Persistent => "persistent",
            Origin::Upstream => "upstream",
            Origin::Shared => "shared",
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched<V> {
    /// The value.
    pub value: V,
    /// Where it came from.
    pub origin: Origin,
}

type Outcome<V, E> = Option<Result<V, Arc<E>>>;

struct Slot {
    id: u64,
    /// A `watch::Receiver<Outcome<V, E>>` for the `V` and `E` of the leader's call.
    receiver: Box<dyn Any + Send + Sync>,
}

/// A table of fetches in flight, keyed by [`RequestKey`]: while one caller (the leader) fetches a key,
/// other callers of the same key wait for its result instead of fetching again.
///
/// [`MemoryCache::get_or_fetch`](crate::MemoryCache::get_or_fetch) and
/// [`Cache::get_or_fetch`](crate::Cache::get_or_fetch) use one internally; use it on its own to
/// de-duplicate calls whose results are not cached.
///
/// Cancellation: the leader's slot is removed when its future completes, is dropped or panics. Waiting
/// callers then wake, and the first to look again becomes the new leader and runs its own fetch, so a
/// cancelled leader never leaves others waiting.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use gm_cache::{Fetched, Origin, RequestKey, SingleFlight};
///
/// let flights = SingleFlight::new();
/// let key = RequestKey::from_u128(1);
/// let slow = async {
///     tokio::task::yield_now().await; // the request is in flight
///     Ok::<_, String>(42)
/// };
/// let (a, b) = tokio::join!(flights.run(key, slow), flights.run(key, async { Ok::<_, String>(43) }));
/// assert_eq!(a.unwrap().origin, Origin::Upstream);
/// assert_eq!(b.unwrap(), Fetched { value: 42, origin: Origin::Shared });
/// # });
/// ```
#[derive(Default)]
pub struct SingleFlight {
    slots: Mutex<HashMap<RequestKey, Slot>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleFlight").field("in_flight", &self.in_flight()).finish()
    }
}

/// The leader's hold on its slot: dropping it (on completion, cancellation or panic) removes the slot
/// first and then drops the sender, which wakes the waiters.
struct Lead<'a, V, E> {
    flights: &'a SingleFlight,
    key: RequestKey,
    id: u64,
    sender: watch::Sender<Outcome<V, E>>,
}

impl<V, E> Drop for Lead<'_, V, E> {
    fn drop(&mut self) {
        let mut slots = self.flights.lock();
        if slots.get(&self.key).is_some_and(|s| s.id == self.id) {
            slots.remove(&self.key);
        }
    }
}

enum Role<'a, V, E> {
    Lead(Lead<'a, V, E>),
    Follow(watch::Receiver<Outcome<V, E>>),
    Found(V, Origin),
    /// Another call on the same key is in flight with different value or error types.
    Alone,
}

impl SingleFlight {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RequestKey, Slot>> {
        // The map is only ever changed by single insert/remove calls, so it is consistent after a panic.
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many keys are being fetched now.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// Runs `fetch` for `key`, unless a call for the same key is already running, in which case this
    /// waits for that call's result. The caller that ran its fetch gets [`Origin::Upstream`], the others
    /// [`Origin::Shared`]; all get a clone of the value or the same error.
    pub async fn run<V, E, F>(&self, key: RequestKey, fetch: F) -> Result<Fetched<V>, Arc<E>>
    where
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        self.run_with(key, || None, |_| {}, fetch).await
    }

    /// As [`run`](Self::run), with a cache around it: `lookup` is tried (under the table's lock, so a
    /// leader that stores before finishing is never missed) before a new fetch starts, and `store` sees the
    /// leader's value before the waiters are woken.
    pub(crate) async fn run_with<V, E, F, L, S>(
        &self,
        key: RequestKey,
        lookup: L,
        store: S,
        fetch: F,
    ) -> Result<Fetched<V>, Arc<E>>
    where
        V: Clone + Send + Sync + 'static,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
        L: Fn() -> Option<(V, Origin)>,
        S: FnOnce(&V),
    {
        let lead = loop {
            match self.role::<V, E>(key, &lookup) {
                Role::Found(value, origin) => return Ok(Fetched { value, origin }),
                Role::Lead(lead) => break Some(lead),
                Role::Alone => break None,
                Role::Follow(mut receiver) => {
                    let outcome = match receiver.wait_for(Option::is_some).await {
                        Ok(outcome) => outcome.clone(),
                        // The leader was cancelled or panicked before it had a result: look again, and
                        // lead if no one else has started.
                        Err(_) => continue,
                    };
                    match outcome {
                        Some(Ok(value)) => return Ok(Fetched { value, origin: Origin::Shared }),
                        Some(Err(e)) => return Err(e),
                        None => continue,
                    }
                }
            }
        };
        let result = fetch.await.map_err(Arc::new);
        if let Ok(value) = &result {
            store(value);
        }
        if let Some(lead) = lead {
            lead.sender.send_replace(Some(result.clone()));
        }
        result.map(|value| Fetched { value, origin: Origin::Upstream })
    }

    fn role<V, E>(&self, key: RequestKey, lookup: &impl Fn() -> Option<(V, Origin)>) -> Role<'_, V, E>
    where
        V: Send + Sync + 'static,
        E: Send + Sync + 'static,
    {
        let mut slots = self.lock();
        if let Some(slot) = slots.get(&key) {
            return match slot.receiver.downcast_ref::<watch::Receiver<Outcome<V, E>>>() {
                Some(receiver) => Role::Follow(receiver.clone()),
                None => Role::Alone,
            };
        }
        if let Some((value, origin)) = lookup() {
            return Role::Found(value, origin);
        }
        let (sender, receiver) = watch::channel::<Outcome<V, E>>(None);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        slots.insert(key, Slot { id, receiver: Box::new(receiver) });
        Role::Lead(Lead { flights: self, key, id, sender })
    }
}
