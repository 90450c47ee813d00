# cython: language_level=3, boundscheck=False, wraparound=False
"""A legislative chart's party entries read in C (the optional compiled part of ``parse``).

``parse._fast_row`` reads ~20,000 such charts per province; in Python the lists of names, numbers and
keys, their comparison with the previous body's and the check of every number cost about 9 µs of the
~50 µs a DPR RI body takes. Without this module (no C compiler when the package was installed) ``parse``
does the same in Python, with the same result.
"""
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyObject_RichCompareBool, Py_EQ
from cpython.unicode cimport PyUnicode_CheckExact, PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR
from cpython cimport array as carray

cdef long long LIMIT = 1000000000  # the largest count a body may hold (parse._LIMIT)


cdef inline bint _same(list previous, Py_ssize_t i, object item) except -1:
    """Whether ``previous`` has ``item`` (the same str, or an equal one) at ``i`` (a str compared in C alone)."""
    if previous is None or i >= PyList_GET_SIZE(previous):
        return False
    cdef PyObject *before = PyList_GET_ITEM(previous, i)
    if not PyUnicode_CheckExact(<object>before):
        return False
    return PyObject_RichCompareBool(<object>before, item, Py_EQ)


cdef inline int _caleg_size(object entry) except -2:
    """Keys of a caleg entry that are read (all but a ``"null"`` key, which must be null); -1 if it is not of that shape."""
    cdef PyObject *value
    if entry is None:
        return 0
    if type(entry) is not dict:
        return -1
    value = PyDict_GetItem(entry, "null")
    if value == NULL:
        return len(<dict>entry)
    if <object>value is not None:
        return -1
    return len(<dict>entry) - 1


def party_chart(dict chart not None, carray.array out not None, list missing not None, tuple previous, caleg=None):
    """``(names, keys, lens)`` of a chart ``{party: {key: number}}`` without its ``"null"`` key; its numbers into ``out``.

    With ``caleg`` (a body's ``{party: {caleg_id: number, ..., "null": null}}``, a dict), each party's
    entry is read as its chart entry's keys and numbers followed by its caleg entry's (without ``"null"``):
    None if caleg names a party the chart lacks, an entry of it is neither null nor a dict, a ``"null"`` key
    of it is not null, or a caleg key begins with "j" (a ``jml_suara_*`` key belongs in the chart).

    ``out`` (an ``array("q")``) is resized to hold every number of the entries, in order, a null as 0 with
    its position in ``missing`` (emptied first). ``names`` (the party keys) and ``keys`` (the entries' keys,
    one after another) are ``previous[0]`` and ``previous[1]`` themselves where equal to them (the bodies
    of a district share them), else new lists; ``lens`` is a tuple of the entries' lengths. None if there
    are fewer than two entries, a key is not a str, an entry is not a dict or a number is neither null nor
    an int in 0..10**9 (a bool, float, string or anything else): the caller reads such a chart otherwise.

    Keys are exact str, so no Python code runs while the chart is read (a caller's key with its own
    ``__eq__`` could change the chart under the reader): what is counted in the first pass is what the
    second writes.
    """
    cdef Py_ssize_t pos = 0, inner, size, i = 0, n = 0, total = 0, matched = 0, extra
    cdef PyObject *more
    cdef PyObject *name
    cdef PyObject *entry
    cdef PyObject *key
    cdef PyObject *value
    cdef long long number
    cdef int overflow
    cdef long long *data
    if out.ob_descr.typecode != ord("q"):
        raise TypeError("out must be an array('q')")
    if caleg is not None and type(caleg) is not dict:
        raise TypeError("caleg must be a dict or None")
    if previous is not None and len(previous) < 2:
        raise ValueError("previous must be (names, keys, ...) of the previous chart")
    cdef list previous_names = None if previous is None else previous[0]
    cdef list previous_keys = None if previous is None else previous[1]
    cdef list names = previous_names
    cdef list keys = previous_keys
    if missing:
        del missing[:]
    while PyDict_Next(chart, &pos, &name, &entry):
        if not PyUnicode_CheckExact(<object>name):
            return None
        if <str>name == "null":
            continue
        if type(<object>entry) is not dict:
            return None
        total += len(<dict>entry)
        if caleg is not None:
            more = PyDict_GetItem(caleg, <object>name)
            if more != NULL:
                matched += 1
                extra = _caleg_size(<object>more)
                if extra < 0:
                    return None
                total += extra
        if names is previous_names and not _same(previous_names, n, <object>name):
            names = [] if previous_names is None else previous_names[:n]
        if names is not previous_names:
            names.append(<object>name)
        n += 1
    if n < 2:
        return None
    if caleg is not None:
        extra = _caleg_size(caleg)  # its parties, and a "null" key that must be null
        if extra < 0 or matched != extra:
            return None
    if names is previous_names and n != PyList_GET_SIZE(previous_names):
        names = previous_names[:n]
    carray.resize(out, total)
    data = out.data.as_longlongs
    lens = []
    pos = 0
    while PyDict_Next(chart, &pos, &name, &entry):
        if <str>name == "null":
            continue
        inner = 0
        size = 0
        while PyDict_Next(<object>entry, &inner, &key, &value):
            if i >= total or not PyUnicode_CheckExact(<object>key):
                return None
            if <object>value is None:
                missing.append(i)
                number = 0
            elif type(<object>value) is not int:
                return None
            else:
                number = PyLong_AsLongLongAndOverflow(<object>value, &overflow)
                if overflow or number < 0 or number > LIMIT:
                    return None
            data[i] = number
            if keys is previous_keys and not _same(previous_keys, i, <object>key):
                keys = [] if previous_keys is None else previous_keys[:i]
            if keys is not previous_keys:
                keys.append(<object>key)
            i += 1
            size += 1
        more = PyDict_GetItem(caleg, <object>name) if caleg is not None else NULL
        if more != NULL and <object>more is not None:
            inner = 0
            while PyDict_Next(<object>more, &inner, &key, &value):
                if not PyUnicode_CheckExact(<object>key):
                    return None
                if <str>key == "null":  # not counted in total (its value is null: _caleg_size)
                    continue
                if i >= total:
                    return None
                if PyUnicode_GET_LENGTH(<object>key) == 0 or PyUnicode_READ_CHAR(<object>key, 0) == 106:  # "j"
                    return None
                if <object>value is None:
                    missing.append(i)
                    number = 0
                elif type(<object>value) is not int:
                    return None
                else:
                    number = PyLong_AsLongLongAndOverflow(<object>value, &overflow)
                    if overflow or number < 0 or number > LIMIT:
                        return None
                data[i] = number
                if keys is previous_keys and not _same(previous_keys, i, <object>key):
                    keys = [] if previous_keys is None else previous_keys[:i]
                if keys is not previous_keys:
                    keys.append(<object>key)
                i += 1
                size += 1
        lens.append(size)
    if i != total:
        return None
    if keys is previous_keys and (keys is None or i != PyList_GET_SIZE(previous_keys)):
        keys = [] if previous_keys is None else previous_keys[:i]
    return names, keys, tuple(lens)
