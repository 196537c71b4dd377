//! Tessera's query engine façade. Issue 3 brings ADQL on DataFusion; for now it lists the
//! catalogs of a data root for the server.
