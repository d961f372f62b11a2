# Cython declarations for context.py (read only by the compiled build): the call's state as an
# extension type (see proxy/response_writer.pxd for why).

cdef class RequestContext:
    cdef public object request
    cdef public object config
    cdef public object route
    cdef public double started_at
    cdef public object key
    cdef public object service
    cdef public object model
    cdef public bint stream
    cdef public bint asked_usage
    cdef public object deployment
    cdef public int attempts
    cdef public int status
    cdef public object usage
    cdef public double upstream_started_at
    cdef public double first_byte_at
    cdef public double finished_at
    cdef public object outcome
    cdef public object error_code
    cdef public object refused_by
    cdef public object cost
    cdef public bint cache_hit
    cdef public object response_body
    cdef public object delivered
    cdef public object span
    cdef public object trace_parent
    cdef public object reserved
    cdef public object answer_headers
    cdef public object response_ref
    cdef public object on_finish
    cdef public object answer_id
    cdef public object sticky_provider
    cdef public object before_answer
    cdef public object saved_tokens
