# Cython declarations for connection.py (read only by the compiled build): see
# response_writer.pxd.

from tollway.proxy.response_writer cimport ResponseWriter


cdef class HttpConnection(ResponseWriter):
    cdef public object _parser
    cdef public bytes _url
    cdef public list _headers
    cdef public object _content_length
    cdef public bint _transfer_encoding
    cdef public object _expect
    cdef public object _request_id
    cdef public object _body
    cdef public Py_ssize_t _body_size
    cdef public Py_ssize_t _head_bytes
    cdef public bint _head_done
    cdef public bint _upgrade
    cdef public object _client_address
    cdef public bint _read_paused
    cdef public object _upload
    cdef public bint _body_paused
    cdef public bint _keep_alive_after_body
    cdef public bint _lingering
    cdef public object _early
    cdef public double deadline

    cpdef _reset_message(self)
    cpdef _start(self, item)
    cpdef _keep_alive(self)
    cpdef _finish_response(self, bint keep_alive)
    cpdef _close(self)
    cpdef _close_now(self)
    cpdef _stop_reading(self)
    cpdef _resume_reading(self)
