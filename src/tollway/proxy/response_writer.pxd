# Cython declarations for response_writer.py (read only by the compiled build; the .py is the
# source either way). Declared as an extension type with typed attributes, the connection's
# state is read and written as C struct fields instead of through CPython's generic
# attribute lookup, which compiled code otherwise pays on every `self.x` (docs/performance.md).
# The reading side's state that writing needs is declared here, for both halves.

from tollway.proxy.server cimport HttpServer


cdef class ResponseWriter:
    cdef public HttpServer _server
    cdef public object _loop
    cdef public object _pending
    cdef public bint _closed
    cdef public object transport
    cdef public object _active
    cdef public object _task
    cdef public object _drain_waiter
    cdef public object _interrupt
    cdef public object _stall
    cdef public bint _write_paused
    cdef public bint _stream_http10
    cdef public bint _streaming

    # Called from typed code (this class, the reading side) as C functions.
    cpdef _keep_alive(self)
    cpdef _finish_response(self, bint keep_alive)
    cpdef _close(self)
