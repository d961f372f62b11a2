# Cython declarations for breaker.py (read only by the compiled build): see response_writer.pxd.

cdef class Breaker:
    cdef public object settings
    cdef public object state
    cdef public Py_ssize_t consecutive
    cdef public object _window
    cdef public double _opened_at
    cdef public double _cooldown
    cdef public bint _probing
    cdef public Py_ssize_t _failures
    cdef public double held_until
