# Cython declarations for http.py (read only by the compiled build): see response_writer.pxd.

cdef class RequestIds:
    cdef public object _prefix
    cdef public Py_ssize_t _n


cdef class Request:
    cdef public object method
    cdef public object path
    cdef public object query
    cdef public object headers
    cdef public object body
    cdef public object http_version
    cdef public bint keep_alive
    cdef public object request_id
    cdef public object client_address
