# Cython declarations for exchange.py (read only by the compiled build): see
# response_writer.pxd.

cdef class Exchange:
    cdef public object pool
    cdef public object head
    cdef public object body
    cdef public bint streaming
    cdef public bint bodyless
    cdef public object conn
    cdef public object connecting
    cdef public bint reused
    cdef public bint cancelled
