//! The participants of an election on PostgreSQL, apart from the rest of the
//! backend: one plain `SELECT` (no function of the schema, so no migration), one
//! statement and so one snapshot, which also works through a transaction pooler.

use tokio_postgres::types::Type;

use super::{column, sql, Shared};
use crate::error::Result;
use crate::model::Participant;

/// The live candidates of one election in queue order (`id`), each with its
/// term (set once it leads) and value. `{s}` is the schema.
const PARTICIPANTS: &str = "SELECT c.id, c.term, c.value FROM {s}.candidates c \
     JOIN {s}.sessions s ON s.id = c.session_id \
     WHERE c.election = $1 AND s.expires_at > clock_timestamp() ORDER BY c.id";

impl Shared {
    /// The candidates of `election` whose session is alive by the server's
    /// clock, oldest first. The first one leads once it took its term, as
    /// `snapshot` decides; its key is the one `leader_of` gives.
    pub(super) async fn participants(&self, election: &str) -> Result<Vec<Participant>> {
        let name = self.full_name(election);
        let rows =
            self.query("list participants", &sql::fill(PARTICIPANTS, &self.schema), &[(&name, Type::TEXT)]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let id: i64 = column(row, 0)?;
            let term: Option<i64> = column(row, 1)?;
            let value: Vec<u8> = column(row, 2)?;
            match term {
                Some(term) if i == 0 => {
                    let l = self.leader_of(id, term, value);
                    out.push(Participant::new(l.key, l.value, true));
                }
                _ => out.push(Participant::new(format!("{}.candidates/{id}", self.schema), value, false)),
            }
        }
        Ok(out)
    }
}
