//! A refused or failed nullable field answers `null` in its place, as the GraphQL spec says ("handled
//! as though the field returned null"), with its error on its path.
//!
//! async-graphql 7 leaves a failed field out of its object instead (async-graphql issues #1272 and
//! #1449), which Relay and Apollo read as a malformed response ("missing field"). This extension
//! catches the error of every nullable field, answers `null`, and keeps the error in the request's
//! [`FieldErrors`], which the HTTP layer adds to the response's `errors`. A non-null field's error
//! is left to the engine.

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo,
};
use async_graphql::{ServerError, ServerResult, Value};
use std::sync::{Arc, Mutex};

/// The errors of the nullable fields answered `null` in one operation.
#[derive(Clone, Default)]
pub struct FieldErrors(Arc<Mutex<Vec<ServerError>>>);

impl FieldErrors {
    /// The errors kept so far, in the order their fields failed.
    pub fn take(&self) -> Vec<ServerError> {
        self.0
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default()
    }

    fn keep(&self, error: ServerError) -> Result<(), ServerError> {
        match self.0.lock() {
            Ok(mut list) => {
                list.push(error);
                Ok(())
            }
            Err(_) => Err(error),
        }
    }
}

/// The extension, registered once on the schema.
pub struct NullOnError;

impl ExtensionFactory for NullOnError {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NullOnErrorExtension)
    }
}

struct NullOnErrorExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for NullOnErrorExtension {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let nullable = !info.return_type.ends_with('!');
        match next.run(ctx, info).await {
            Err(error) if nullable => match ctx.data_opt::<FieldErrors>() {
                Some(sink) => sink.keep(error).map(|()| Some(Value::Null)),
                None => Err(error),
            },
            other => other,
        }
    }
}
