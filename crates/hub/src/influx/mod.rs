//! InfluxDB: the HTTP client (v1 and v2 APIs), line protocol, and the batching point writer.

mod client;
mod line;
mod sink;
mod writer;

pub use client::InfluxStore;
pub use line::{FieldValue, Point, PointError};
pub use writer::{PointWriter, WriterStats};
