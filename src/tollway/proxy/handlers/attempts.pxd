# Cython declarations for attempts.py (read only by the compiled build): see
# proxy/response_writer.pxd.

from tollway.policies.context cimport RequestContext
from tollway.proxy.exchange cimport Exchange


cdef class ModelCall:
    cdef public object upstreams
    cdef public object balancers
    cdef public RequestContext ctx
    cdef public object conn
    cdef public object api
    cdef public object intake
    cdef public object plan
    cdef public Py_ssize_t index
    cdef public object attempt
    cdef public object deployment_state
    cdef public object exchange
    cdef public object timer
    cdef public object canonical
    cdef public object client_request
    cdef public object releasing

    # Called from typed code (this class, its exchange) as C functions.
    cpdef begin(self)
    cpdef _prepare(self, attempt)
    cpdef _take(self)
    cpdef _starting(self, attempt)
    cpdef _next(self)


cdef class _AttemptExchange(Exchange):
    cdef public ModelCall call
    cdef public object prepared
