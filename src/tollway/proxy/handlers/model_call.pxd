# Cython declarations for model_call.py (read only by the compiled build): see
# proxy/response_writer.pxd.

cdef class ModelCalls:
    cdef public object upstreams
    cdef public object balancers
    cdef public object prompts
