# Cython declarations for server.py (read only by the compiled build): see response_writer.pxd.

cdef class HttpServer:
    cdef public object dispatch
    cdef public object limits
    cdef public object deadlines
    cdef public object streamed_body_limit
    cdef public object connections
    cdef public object ids
    cdef public bint draining
    cdef public object _server
