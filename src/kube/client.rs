//! The REST client: GET, paginated LIST, POST, merge-PATCH (also `/status`), DELETE and WATCH requests
//! against the API server, with explicit timeouts and `Status` error bodies decoded into `kube::Error`.
//! (placeholder: to be written)
