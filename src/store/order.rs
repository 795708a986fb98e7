//! Keyset cursors for lists of people that can be sorted several ways (the guest list, the people
//! directory): one cursor shape and one rule for which cursor continues which order, whatever the
//! list sorts by.

use crate::error::{AppError, AppResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a list can sort by: a text (email, display name) or a time (last activity, end of access).
pub trait SortField: Copy + Default + PartialEq {
    /// Whether its values are texts (else times).
    fn is_text(self) -> bool;
}

/// A list's order: a sort value, then the user id, both ascending or both descending.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOrder<S> {
    pub by: S,
    pub descending: bool,
}

/// A cursor's content: the order it was cut in, and the last person's sort value and id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ListKey<S> {
    /// By email ascending, a list's first order: `[email, id]`, as cursors always were.
    Email(String, Uuid),
    /// Any other order: its sort value is a text (email, display name) or a time (null: none).
    Ordered {
        order: ListOrder<S>,
        text: Option<String>,
        time: Option<DateTime<Utc>>,
        id: Uuid,
    },
}

/// Where a page continues: the sort value (the text, or the time of a time order) and the id.
pub struct After {
    pub text: String,
    pub time: Option<DateTime<Utc>>,
    pub id: Uuid,
}

impl<S: SortField> ListOrder<S> {
    /// The cursor of a person whose sort value in this order is `text` or `time`.
    pub fn key_of(self, text: Option<String>, time: Option<DateTime<Utc>>, id: Uuid) -> ListKey<S> {
        match text {
            Some(e) if self == Self::default() => ListKey::Email(e, id),
            _ => ListKey::Ordered {
                order: self,
                text,
                time,
                id,
            },
        }
    }

    /// Where a cursor continues, if it was cut in this order (`INVALID_INPUT` otherwise: a cursor
    /// of another order, or of another direction, names no position in this one).
    pub fn after(self, key: ListKey<S>) -> AppResult<After> {
        let (order, text, time, id) = match key {
            ListKey::Email(e, id) => (Self::default(), Some(e), None, id),
            // The first order's cursors are the bare pair only.
            ListKey::Ordered { order, .. } if order == Self::default() => {
                return Err(not_a_cursor());
            }
            ListKey::Ordered {
                order,
                text,
                time,
                id,
            } => (order, text, time, id),
        };
        let shaped = if self.by.is_text() {
            text.is_some() && time.is_none()
        } else {
            text.is_none()
        };
        if order != self || !shaped {
            return Err(not_a_cursor());
        }
        Ok(After {
            text: text.unwrap_or_default(),
            time,
            id,
        })
    }
}

/// The refusal of a cursor that names no position in the list it was given to.
pub fn not_a_cursor() -> AppError {
    AppError::invalid("after", "is not a cursor from this list")
}
