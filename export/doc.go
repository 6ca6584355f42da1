// Package export streams the customers a query matches as NDJSON or CSV
// (CONTRACT §4.3): every document exactly once, as of one point in time,
// page by page in constant memory.
//
// Stream walks the query under a point in time with search_after on
// customer_id (unique per customer document, so no member repeats or is
// skipped whatever changes meanwhile) and hands each document to a Writer,
// flushing after every page; the point in time is closed when the walk
// ends, however it ends (a client gone, a failed write), with a short
// context of its own. NewNDJSON and NewCSV are the two Writers. The HTTP
// export, export jobs and the CLI all write through them.
//
// # CSV
//
// RFC 4180 with CRLF line ends and a header row of the column paths; the
// first column is always customer_id. A cell is quoted when it holds a
// comma, a double quote, a CR or an LF, its quotes doubled, its bytes
// otherwise as they are (encoding/csv's writer turns a lone CR inside a
// value into nothing, so it is not used). A column names a document path
// ("metrics.total_spend"); a path through a list (orders.status) gives the
// list of the values it reaches. Strings, numbers (as written in the
// document) and booleans are written as they are, null and missing values
// as an empty cell, lists and objects as JSON text. A cell starting with
// =, +, -, @, a tab or a CR is prefixed with ' so that a spreadsheet takes
// it as text, never as a formula. An optional UTF-8 byte-order mark comes
// first, for Excel.
package export
