# Cython declarations for routing.py (read only by the compiled build): see response_writer.pxd.

cdef class Router:
    cdef public object holder
    cdef public object handlers
    cdef public object on_close
    cdef public object _config
    cdef public object _exact
    cdef public object _prefixes
