//! The console's resources ([`Load`]) and actions ([`Call`]), type-erased.
//!
//! Leptos's `LocalResource` and `Action` are generic over their value, input and future types,
//! so each use instantiated the whole async machinery again (spawning, suspense tracking,
//! versioning, the wrapped futures): a few kB of wasm apiece. These wrappers instantiate it once:
//! values travel as `Rc<dyn Any>` and are downcast back to their statically known type when
//! read, and futures are boxed.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;

use leptos::prelude::*;

use crate::api::ApiError;

type Erased = Rc<dyn Any>;
type Boxed<T> = Pin<Box<dyn Future<Output = T>>>;
type Outcome = Result<Erased, ApiError>;
type Fetch = Box<dyn Fn() -> Boxed<Erased>>;
type Run = Box<dyn Fn(&Erased) -> Boxed<Outcome>>;

/// Data loaded by an async call, reloaded when the signals its fetcher reads change (a
/// `LocalResource`). Reading it inside `Suspense`/`Transition` suspends until it has loaded.
pub struct Load<T> {
    inner: LocalResource<Erased>,
    ty: PhantomData<fn() -> T>,
}

impl<T> Clone for Load<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Load<T> {}

impl<T: Clone + 'static> Load<T> {
    /// Loads with `fetch`, which is called (tracking the signals it reads) before its future
    /// runs.
    pub fn new<Fut: Future<Output = T> + 'static>(fetch: impl Fn() -> Fut + 'static) -> Self {
        Load {
            inner: resource(Box::new(move || {
                let running = fetch();
                Box::pin(async move { Rc::new(running.await) as Erased })
            })),
            ty: PhantomData,
        }
    }

    /// The loaded value, once there is one (tracked).
    pub fn get(&self) -> Option<T> {
        self.inner
            .get()
            .and_then(|value| value.downcast_ref::<T>().cloned())
    }
}

fn resource(fetch: Fetch) -> LocalResource<Erased> {
    LocalResource::new(fetch)
}

/// An async call the person starts, such as submitting a form (an `Action` whose output is a
/// call's result): its progress, its error and its last success. The methods that do not
/// depend on the types are [`Sent`]'s.
pub struct Call<I, O> {
    sent: Sent,
    ty: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for Call<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I, O> Copy for Call<I, O> {}

impl<I, O> std::ops::Deref for Call<I, O> {
    type Target = Sent;

    fn deref(&self) -> &Sent {
        &self.sent
    }
}

impl<I, O> From<Call<I, O>> for Sent {
    fn from(call: Call<I, O>) -> Sent {
        call.sent
    }
}

impl<I: 'static, O: Clone + 'static> Call<I, O> {
    /// A call that runs `run` on each [`dispatch`](Self::dispatch)ed input.
    pub fn new<Fut>(run: impl Fn(&I) -> Fut + 'static) -> Self
    where
        Fut: Future<Output = Result<O, ApiError>> + 'static,
    {
        Call {
            sent: Sent(action(Box::new(move |input: &Erased| {
                let running = input.downcast_ref::<I>().map(&run);
                Box::pin(async move {
                    match running {
                        Some(running) => running.await.map(|value| Rc::new(value) as Erased),
                        // Unreachable: `dispatch` only takes an `I`.
                        None => Err(ApiError::Decode("mismatched input".into())),
                    }
                })
            }))),
            ty: PhantomData,
        }
    }

    /// Starts the call with `input`.
    pub fn dispatch(&self, input: I) {
        self.sent.0.dispatch_local(Rc::new(input) as Erased);
    }

    /// The last run's value, if it succeeded (tracked).
    pub fn ok(&self) -> Option<O> {
        self.sent.0.value().with(|outcome| {
            outcome
                .as_ref()
                .and_then(|outcome| outcome.as_ref().ok())
                .and_then(|value| value.downcast_ref::<O>().cloned())
        })
    }
}

fn action(run: Run) -> Action<Erased, Outcome> {
    Action::new_local(move |input: &Erased| run(input))
}

/// A [`Call`] without its types: what a view showing its progress or error needs.
#[derive(Clone, Copy)]
pub struct Sent(Action<Erased, Outcome>);

impl Sent {
    /// Whether a run is in progress.
    pub fn pending(&self) -> Memo<bool> {
        self.0.pending()
    }

    /// How many runs finished (tracked through the signal).
    pub fn version(&self) -> RwSignal<usize> {
        self.0.version()
    }

    /// The last run's error, if it failed (tracked).
    pub fn error(&self) -> Option<ApiError> {
        self.0.value().with(|outcome| match outcome {
            Some(Err(error)) => Some(error.clone()),
            _ => None,
        })
    }
}
