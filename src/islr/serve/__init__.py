"""``islr serve``: sign recognition in the browser (camera over a WebSocket, video uploads)."""
