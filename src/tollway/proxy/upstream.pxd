# Cython declarations for upstream.py (read only by the compiled build; the .py is the source
# either way): the connection and its pool as extension types, their state C struct fields
# (see response_writer.pxd for why).

cdef class UpstreamPool


cdef class UpstreamConnection:
    cdef public UpstreamPool pool
    cdef public object loop
    cdef public object transport
    cdef public object parser
    cdef public bint closed
    cdef public double deadline
    cdef public double until
    cdef public bint busy
    cdef public object chunks
    cdef public bint sending
    cdef public bint write_paused
    cdef public object write_waiter
    cdef public int status
    cdef public list headers
    cdef public Py_ssize_t buffered
    cdef public bint headers_done
    cdef public bint done
    cdef public bint keep_alive
    cdef public bint got_bytes
    cdef public object error
    cdef public object waiter
    cdef public bint read_paused
    cdef public bint whole
    cdef public bint bodyless
    cdef public Py_ssize_t head_bytes
    cdef public Py_ssize_t received
    cdef public object refusal
    cdef public object listener
    cdef public object head_listener

    # Called from typed code (this class, the exchange) as C functions.
    cpdef _reset(self)
    cpdef start(self, bytes head, bytes body, bint bodyless=*)
    cpdef _wake(self)
    cpdef _resume(self)
    cpdef _release(self)
    cpdef abort(self)
    cpdef _fail(self, error)
    cpdef _notify(self, error)
    cpdef bytes take_body(self)
    cpdef _refresh_deadline(self)
    cpdef _arm(self, double seconds)
    cpdef limit_total(self)


cdef class UpstreamPool:
    cdef public object origin
    cdef public object timeouts
    cdef public object deadlines
    cdef public object max_idle
    cdef public object idle
    cdef public object _ssl

    cpdef take_idle(self)
    cpdef release(self, UpstreamConnection conn)
