# Cython declarations for exchange.py (read only by the compiled build): see
# response_writer.pxd.

from tollway.proxy.upstream cimport UpstreamConnection, UpstreamPool


cdef class Exchange:
    cdef public UpstreamPool pool
    cdef public object head
    cdef public object body
    cdef public bint streaming
    cdef public bint bodyless
    cdef public UpstreamConnection conn
    cdef public object connecting
    cdef public bint reused
    cdef public bint cancelled
