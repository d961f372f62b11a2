# Cython declarations for balancer.py (read only by the compiled build): see response_writer.pxd.

cdef class DeploymentState:
    cdef public object breaker
    cdef public Py_ssize_t in_flight
    cdef public double latency
    cdef public double ttfb
    cdef public object minute
    cdef public object requests
    cdef public object tokens


cdef class RouteState:
    cdef public object credits
    cdef public object deployments
    cdef public object budget


cdef class Balancers:
    cdef public object _routes
    cdef public object random
    cdef public object _plans
