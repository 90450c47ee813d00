# cython: language_level=3, boundscheck=False, wraparound=False
"""A legislative chart's party entries, and a whole usual party body's row, read in C (the optional compiled part of ``parse``).

``parse._fast_row`` reads ~20,000 such bodies per province. In Python the lists of names, numbers and
keys, their comparison with the previous body's and the check of every number cost about 9 µs of the
~50 µs a DPR RI body takes (``party_chart``), and the rest of the row (administration page, dapil,
photo times, the depth test) about 10 µs more (``party_row``). Without this module (no C compiler when
the package was installed) ``parse`` does the same in Python, with the same result.
"""
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.object cimport PyObject, PyObject_RichCompareBool, Py_EQ
from cpython.unicode cimport PyUnicode_Check, PyUnicode_CheckExact, PyUnicode_GET_LENGTH, PyUnicode_READ_CHAR
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM, PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.ref cimport Py_INCREF
from cpython cimport array as carray

cdef long long LIMIT = 1000000000  # the largest count a body may hold (parse._LIMIT)
cdef enum:
    _MAX_FIELDS = 64  # fields of an administration page party_row reads (parse: 18)


cdef inline bint _same(list previous, Py_ssize_t i, object item) except -1:
    """Whether ``previous`` has ``item`` (the same str, or an equal one) at ``i`` (a str compared in C alone)."""
    if previous is None or i >= PyList_GET_SIZE(previous):
        return False
    cdef PyObject *before = PyList_GET_ITEM(previous, i)
    if not PyUnicode_CheckExact(<object>before):
        return False
    return PyObject_RichCompareBool(<object>before, item, Py_EQ)


cdef inline bint _is_null(object key):
    """Whether a str is ``"null"``, its length first (before Python 3.14 Cython's ``==`` on two str calls
    ``PyUnicode_Compare``, an ordering by memcmp: 1.5 µs of a DPR RI chart's 4.6)."""
    return (PyUnicode_GET_LENGTH(key) == 4 and PyUnicode_READ_CHAR(key, 0) == 110 and PyUnicode_READ_CHAR(key, 1) == 117
            and PyUnicode_READ_CHAR(key, 2) == 108 and PyUnicode_READ_CHAR(key, 3) == 108)


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
    if out.ob_descr.typecode != ord("q"):
        raise TypeError("out must be an array('q')")
    if caleg is not None and type(caleg) is not dict:
        raise TypeError("caleg must be a dict or None")
    if previous is not None and len(previous) < 2:
        raise ValueError("previous must be (names, keys, ...) of the previous chart")
    return _party_chart(chart, out, missing, previous, caleg)


cdef object _party_chart(dict chart, carray.array out, list missing, tuple previous, object caleg):
    """``party_chart`` once its arguments are checked (``party_row`` calls it so)."""
    cdef Py_ssize_t pos = 0, inner, size, i = 0, n = 0, total = 0, matched = 0, extra
    cdef PyObject *more
    cdef PyObject *name
    cdef PyObject *entry
    cdef PyObject *key
    cdef PyObject *value
    cdef long long number
    cdef int overflow
    cdef long long *data
    cdef list previous_names = None if previous is None else previous[0]
    cdef list previous_keys = None if previous is None else previous[1]
    cdef list names = previous_names
    cdef list keys = previous_keys
    if missing:
        del missing[:]
    while PyDict_Next(chart, &pos, &name, &entry):
        if not PyUnicode_CheckExact(<object>name):
            return None
        if _is_null(<object>name):
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
        if _is_null(<object>name):
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
                if _is_null(<object>key):  # not counted in total (its value is null: _caleg_size)
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


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_FindChar(object text, Py_UCS4 ch, Py_ssize_t start, Py_ssize_t end, int direction) except -2


cdef inline bint _digits(object text, Py_ssize_t start, Py_ssize_t end):
    """Whether ``text[start:end]`` is ASCII digits alone (what ``[0-9]`` matches in a str pattern)."""
    cdef Py_UCS4 c
    while start < end:
        c = PyUnicode_READ_CHAR(text, start)
        if c < 48 or c > 57:
            return False
        start += 1
    return True


cdef object _photo_time(object url):
    """``parse._photo_time``: ``YYYYMMDD HHMMSS`` from a photo name ``.../<13 digits>-<8 digits>-<6 digits>--<no slash>``.

    ``parse.PHOTO_TIME`` may only match at the last slash (nothing after it holds one), so it is tested there alone.
    """
    cdef Py_ssize_t n, at
    cdef char text[15]
    cdef int k
    if not PyUnicode_Check(url):
        return None
    n = PyUnicode_GET_LENGTH(url)
    at = PyUnicode_FindChar(url, 47, 0, n, -1)  # "/"
    if at < 0 or n - at < 32:
        return None
    if not (_digits(url, at + 1, at + 14) and PyUnicode_READ_CHAR(url, at + 14) == 45 and _digits(url, at + 15, at + 23)
            and PyUnicode_READ_CHAR(url, at + 23) == 45 and _digits(url, at + 24, at + 30)
            and PyUnicode_READ_CHAR(url, at + 30) == 45 and PyUnicode_READ_CHAR(url, at + 31) == 45):
        return None
    for k in range(8):
        text[k] = <char>PyUnicode_READ_CHAR(url, at + 15 + k)
    text[8] = 32
    for k in range(6):
        text[9 + k] = <char>PyUnicode_READ_CHAR(url, at + 24 + k)
    return text[:15].decode("ascii")


cdef inline int _containers(object value):
    """1 if ``value`` is exactly a dict or a list (what a decoded body nests), else 0."""
    return 1 if (type(value) is dict or type(value) is list) else 0


cdef inline void _put(tuple row, Py_ssize_t i, object value):
    Py_INCREF(value)
    PyTuple_SET_ITEM(row, i, value)


def party_row(str code not None, dict body not None, Py_ssize_t text_length, object long, tuple fields not None,
              tuple no_totals not None, Py_ssize_t photos, Py_ssize_t max_brackets):
    """The row ``parse._fast_row`` makes (with ``dapil=True``) of a party body decoded from ``text_length``
    characters of JSON, the body's counts left to the caller's column check as there, and its numbers added
    to ``long``; or None, with ``long`` as it was, to let ``_fast_row`` read the body itself.

    Takes the usual body alone: a chart of party entries that ``party_chart`` reads (with the body's
    ``caleg``, a dict, if any) in the layout of the body before (``long.last``); an administration page
    that is null or holds exactly ``fields``; ``kode_dapil`` null or 2 to 13 ASCII digits; and, for a text
    longer than ``max_brackets``, lists and dicts only where ``parse._shallow`` allows them. ``images``
    may be anything (not a list: no photo times, no count). ``no_totals`` are the row's vote columns
    (their totals are among the numbers), ``photos`` the photo times kept.
    """
    cdef object chart = body.get("chart")
    cdef object administrasi = body.get("administrasi")
    cdef object caleg = body.get("caleg")
    cdef object images, dapil, psu, ts, status, value, last, read, names, keys, lens
    cdef tuple row
    cdef Py_ssize_t n_fields = PyTuple_GET_SIZE(fields), n_totals = PyTuple_GET_SIZE(no_totals), i, j, size, found
    cdef Py_ssize_t pos = 0, kept, offset
    cdef PyObject *key
    cdef PyObject *item
    cdef bint any_admin = False
    cdef PyObject *admin[_MAX_FIELDS]
    cdef list image_list, missing
    cdef carray.array scratch, values
    if type(chart) is not dict or (caleg is not None and type(caleg) is not dict):
        return None
    if administrasi is not None and (type(administrasi) is not dict or PyDict_Size(administrasi) != n_fields):
        return None
    dapil = body.get("kode_dapil")
    if dapil is not None:
        if not PyUnicode_CheckExact(dapil):
            return None
        size = PyUnicode_GET_LENGTH(dapil)
        if size < 2 or size > 13 or not _digits(dapil, 0, size):
            return None
    images = body.get("images")
    image_list = images if type(images) is list else None
    if text_length > max_brackets:  # parse._shallow, with the administration page holding its fields alone
        found = 0
        while PyDict_Next(body, &pos, &key, &item):
            found += _containers(<object>item)
        if found != 1 + (administrasi is not None) + (image_list is not None) + (caleg is not None):
            return None
        item = PyDict_GetItem(chart, "null")
        if item != NULL and _containers(<object>item):
            return None
        if image_list is not None:
            for value in image_list:
                if _containers(value):
                    return None
    last = long.last
    if type(last) is not tuple or PyTuple_GET_SIZE(last) < 4:
        return None
    # The page's fields (borrowed: the body holds them), each one there or the body refused.
    if n_fields > _MAX_FIELDS:
        return None
    if administrasi is not None:
        for i in range(n_fields):
            admin[i] = PyDict_GetItem(administrasi, <object>PyTuple_GET_ITEM(fields, i))
            if admin[i] == NULL:  # a field left out (another in its place): _fast_row reads the page
                return None
            if <object>admin[i] is not None:
                any_admin = True
    scratch = long.scratch
    missing = long.scratch_missing
    read = _party_chart(chart, scratch, missing, last, caleg)
    if read is None:
        return None
    names, keys, lens = read
    if not ((last[1] is keys or last[1] == keys) and last[2] == lens and (last[0] is names or last[0] == names)):
        return None  # another layout: _fast_row finds or makes it
    # Nothing below can refuse the body: the row, whole.
    kept = 0 if image_list is None else min(photos, PyList_GET_SIZE(image_list))
    row = PyTuple_New(1 + n_totals + n_fields + 6 + photos + 3)
    _put(row, 0, code)
    for i in range(n_totals):
        _put(row, 1 + i, <object>PyTuple_GET_ITEM(no_totals, i))
    j = 1 + n_totals
    for i in range(n_fields):
        _put(row, j + i, None if administrasi is None else <object>admin[i])
    j += n_fields
    _put(row, j, True)  # has_chart
    _put(row, j + 1, any_admin)
    psu = body.get("psu")
    _put(row, j + 2, psu if PyUnicode_Check(psu) and psu.strip() else None)
    ts = body.get("ts")
    _put(row, j + 3, ts if PyUnicode_Check(ts) else None)
    status = body.get("status_suara")
    _put(row, j + 4, status if type(status) is bool else None)
    status = body.get("status_adm")
    _put(row, j + 5, status if type(status) is bool else None)
    j += 6
    for i in range(photos):
        _put(row, j + i, _photo_time(image_list[i]) if i < kept else None)
    j += photos
    _put(row, j, dapil)
    if image_list is None:
        _put(row, j + 1, None)
    else:
        found = 0
        for value in image_list:
            if PyUnicode_Check(value):
                found += 1
        _put(row, j + 1, found)
    _put(row, j + 2, len(names))
    # Only now, when nothing can refuse the body, its numbers join the others.
    long.layout_of_body.append(last[3])
    values = long.values
    if missing:
        offset = len(values)
        long.missing.extend([offset + k for k in missing])
    carray.extend(values, scratch)
    return row
