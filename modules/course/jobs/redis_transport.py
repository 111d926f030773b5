"""Kombu's Redis transport, made to survive Redis dying while acks-late tasks run.

celery_app.py registers it as kombu's `redis` transport, so `redis://` URLs use it. Two changes to
kombu 5.7's:

1. When the connection to Redis is lost, kombu closes the channel and pushes the running tasks'
   unacknowledged messages back into their queue. With Redis down that crashed the whole worker
   ("Unrecoverable error: AttributeError"); with Redis up (a dropped connection) it queued a
   second copy of a task still running, which then ran twice. Here, after a lost connection,
   the messages stay where they are, in Redis's `unacked` hash: the running task acknowledges
   its message when it finishes, and a message whose worker died comes back after the
   visibility timeout, as after any crash. A normal close (worker shutdown) still hands back at
   once the messages it held and had not started.
2. A task that finishes after the reconnection acknowledges its message on the channel it came
   from. Kombu had already dropped that channel's link to the broker URL, so the acknowledgement
   failed and the task ran a second time once the visibility timeout passed. Here the channel keeps
   its connection parameters and reaches the restarted Redis.
"""
from __future__ import annotations

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _kept_params: dict | None = None
    _closing = False
    _connection_lost = False

    def _on_connection_disconnect(self, connection):
        if not self._closing:
            self._connection_lost = True  # Redis went away under us: not our own close
        super()._on_connection_disconnect(connection)

    def _connparams(self, asynchronous=False):
        if self._kept_params and not asynchronous and not (self.connection and self.connection.client):
            return dict(self._kept_params)  # the connection was lost: same Redis, fresh sockets
        params = super()._connparams(asynchronous=asynchronous)
        if not asynchronous:
            self._kept_params = dict(params)
        return params

    def close(self):
        self._closing = True
        if self._connection_lost and self._qos is not None:
            self._qos.restore_at_shutdown = False  # leave unacked messages in Redis (see above)
        super().close()  # a normal close (worker shutdown) still puts unstarted messages back at once


class Transport(kombu_redis.Transport):
    Channel = Channel
