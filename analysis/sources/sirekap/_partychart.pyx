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


# ---------------------------------------------------------------------------------------------------
# A whole party-ballot body read from its JSON text, without a Python object per number.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_FromStringAndSize
from libc.string cimport memcmp, memcpy, strlen

cdef extern from "Python.h":
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)

ctypedef unsigned char uchar

cdef enum:
    MAX_ENTRIES = 64  # party entries of a chart or a caleg; more and orjson reads the body
    MAX_ITEMS = 2048  # counts of a chart and its caleg together (a DPRD body has a few hundred); the same
    MAX_TEXT = 0x7fffffff  # positions are int

cdef enum:  # the keys of a body, in TOP_NAMES' order
    CHART = 0
    CALEG, ADMINISTRASI, IMAGES, PSU, TS, STATUS_SUARA, STATUS_ADM, KODE_DAPIL, TOP_KEYS

cdef const char *TOP_NAMES[9]
TOP_NAMES[:] = [b"chart", b"caleg", b"administrasi", b"images", b"psu", b"ts", b"status_suara", b"status_adm", b"kode_dapil"]
#: parse.ADMINISTRASI_FIELDS, in its order (a test checks that both agree)
cdef const char *ADMIN_NAMES[18]
ADMIN_NAMES[:] = [b"pemilih_dpt_j", b"pemilih_dpt_l", b"pemilih_dpt_p", b"pengguna_dpt_j", b"pengguna_dpt_l", b"pengguna_dpt_p",
                  b"pengguna_dptb_j", b"pengguna_dptb_l", b"pengguna_dptb_p", b"pengguna_non_dpt_j", b"pengguna_non_dpt_l",
                  b"pengguna_non_dpt_p", b"pengguna_total_j", b"pengguna_total_l", b"pengguna_total_p", b"suara_sah",
                  b"suara_tidak_sah", b"suara_total"]
cdef int TOP_SIZES[9]
cdef int ADMIN_SIZES[18]
for _k in range(9):
    TOP_SIZES[_k] = strlen(TOP_NAMES[_k])
for _k in range(18):
    ADMIN_SIZES[_k] = strlen(ADMIN_NAMES[_k])
ADMINISTRASI_FIELDS = tuple(ADMIN_NAMES[_k].decode() for _k in range(18))


# The counts of a chart's and a caleg's entries as parsed, and where their keys are in the text.
cdef struct Items:
    int count
    int key_start[MAX_ITEMS]
    int key_end[MAX_ITEMS]
    int value[MAX_ITEMS]  # -1: null


# A chart's or caleg's party entries: name (start, end) in the text, and their items (first, count);
# first -1 for a null entry.
cdef struct Entries:
    int count
    int name_start[MAX_ENTRIES]
    int name_end[MAX_ENTRIES]
    int first[MAX_ENTRIES]
    int size[MAX_ENTRIES]


cdef inline Py_ssize_t _ws(const uchar *s, Py_ssize_t i) noexcept:
    """After the whitespace at ``i`` (the text ends in a NUL, which is none)."""
    while s[i] == 32 or s[i] == 10 or s[i] == 13 or s[i] == 9:
        i += 1
    return i


cdef inline Py_ssize_t _string_end(const uchar *s, Py_ssize_t i) noexcept:
    """The closing quote of the string opening at ``i``; -1 if it holds an escape, a control or non-ASCII
    byte (orjson reads those), or is not closed (the closing NUL is a control byte)."""
    cdef uchar c
    i += 1
    while True:
        c = s[i]
        if c == 34:  # "
            return i
        if c < 32 or c >= 127 or c == 92:  # a control byte (NUL too), DEL, non-ASCII, or a backslash
            return -1
        i += 1


cdef inline bint _eq(const uchar *a, const uchar *b, Py_ssize_t size) noexcept:
    cdef Py_ssize_t k
    for k in range(size):
        if a[k] != b[k]:
            return False
    return True


cdef inline bint _null(const uchar *s, Py_ssize_t i) noexcept:
    return s[i] == 110 and s[i + 1] == 117 and s[i + 2] == 108 and s[i + 3] == 108  # "null" (a NUL stops it)


cdef inline Py_ssize_t _count(const uchar *s, Py_ssize_t i, int *value) noexcept:
    """After a count at ``i`` (digits without a leading zero, at most 10**9) or null (``value`` -1); -1 if
    it is anything else (a negative number, a fraction, an exponent, a string, ...)."""
    cdef long long v = 0
    cdef Py_ssize_t j = i
    if _null(s, i):
        value[0] = -1
        return i + 4
    if s[i] < 48 or s[i] > 57:
        return -1
    if s[i] == 48:
        j = i + 1
    else:
        while j - i < 11 and 48 <= s[j] <= 57:
            v = v * 10 + (s[j] - 48)
            j += 1
    if (48 <= s[j] <= 57) or s[j] == 46 or s[j] == 101 or s[j] == 69:  # a digit, ".", "e", "E"
        return -1
    if v > LIMIT:
        return -1
    value[0] = <int>v
    return j


cdef inline int _key(const uchar *s, Py_ssize_t start, Py_ssize_t end, const char **names, const int *sizes, int size) noexcept:
    cdef int k
    for k in range(size):
        if sizes[k] == end - start and _eq(s + start, <const uchar *>names[k], end - start):
            return k
    return -1


cdef Py_ssize_t _entries(const uchar *s, Py_ssize_t i, Entries *entries, Items *items, bint caleg) noexcept:
    """After the object at ``i``: a chart ``{party: {key: count | null}, "null": null}`` or a caleg
    ``{party: {id: count | null, "null": null} | null, "null": null}`` (its ids not beginning with "j"),
    its entries and items added; -1 if it is not of that shape. A caleg entry's "null" key is no item."""
    cdef Py_ssize_t start, end
    cdef int value
    cdef bint null_seen = False
    entries.count = 0
    i = _ws(s, i + 1)
    if s[i] == 125:  # }
        return i + 1
    while True:
        if s[i] != 34:
            return -1
        end = _string_end(s, i)
        if end < 0:
            return -1
        start = i + 1
        i = _ws(s, end + 1)
        if s[i] != 58:  # :
            return -1
        i = _ws(s, i + 1)
        if end - start == 4 and _eq(s + start, b"null", 4):
            if null_seen or not _null(s, i):
                return -1
            null_seen = True
            i += 4
        else:
            if entries.count >= MAX_ENTRIES:
                return -1
            entries.name_start[entries.count] = start
            entries.name_end[entries.count] = end
            entries.first[entries.count] = items.count
            if s[i] == 123:  # {: the entry's items
                i = _ws(s, i + 1)
                if s[i] == 125:
                    i += 1
                else:
                    while True:
                        if s[i] != 34:
                            return -1
                        end = _string_end(s, i)
                        if end < 0:
                            return -1
                        start = i + 1
                        i = _ws(s, end + 1)
                        if s[i] != 58:
                            return -1
                        i = _count(s, _ws(s, i + 1), &value)
                        if i < 0:
                            return -1
                        if caleg and end - start == 4 and _eq(s + start, b"null", 4):
                            if value != -1:
                                return -1  # caleg[party]["null"] holds a number
                        elif caleg and (end == start or s[start] == 106):
                            return -1  # "j": a jml_suara_* key belongs in the chart
                        else:
                            if items.count >= MAX_ITEMS:
                                return -1
                            items.key_start[items.count] = start
                            items.key_end[items.count] = end
                            items.value[items.count] = value
                            items.count += 1
                        i = _ws(s, i)
                        if s[i] == 44:  # ,
                            i = _ws(s, i + 1)
                        elif s[i] == 125:
                            i += 1
                            break
                        else:
                            return -1
            elif caleg and _null(s, i):
                entries.first[entries.count] = -1
                i += 4
            else:  # a party total alone (the early flat chart) or anything else: orjson reads it
                return -1
            entries.size[entries.count] = items.count - entries.first[entries.count] if entries.first[entries.count] >= 0 else 0
            entries.count += 1
        i = _ws(s, i)
        if s[i] == 44:
            i = _ws(s, i + 1)
        elif s[i] == 125:
            return i + 1
        else:
            return -1


cdef inline object _text(const uchar *s, Py_ssize_t start, Py_ssize_t end):
    return PyUnicode_DecodeASCII(<const char *>(s + start), end - start, NULL)


cdef inline Py_ssize_t _sign(uchar *out, Py_ssize_t at, const uchar *previous, Py_ssize_t size, bint *same,
                             const uchar *s, Py_ssize_t start, Py_ssize_t end, uchar mark) noexcept:
    """The signature's next piece, the bytes ``s[start:end]`` and ``mark``: compared with ``previous``'s
    (while ``same``), written to ``out`` if not NULL; where the next piece goes."""
    cdef Py_ssize_t length = end - start
    if out != NULL:
        memcpy(out + at, s + start, length)
        out[at + length] = mark
    elif same[0] and (at + length >= size or not _eq(previous + at, s + start, length) or previous[at + length] != mark):
        same[0] = False
    return at + length + 1


def party_body(bytes text not None, carray.array out not None, list missing not None, tuple previous):
    """A party ballot's TPS body read from its JSON text as ``parse._fast_row`` reads it after orjson, or None.

    Returns ``(names, keys, lens, signature, administrasi, images, psu, ts, status_suara, status_adm,
    kode_dapil)``: ``names``, ``keys`` and ``lens`` as ``party_chart`` gives them for the body's chart
    and ``caleg`` (None for a null chart), its numbers in ``out`` and its nulls' positions in ``missing``
    as there; ``signature`` the bytes of the names and keys, which tell layouts apart (``previous[4]``:
    the previous body's, whose lists are returned where the signatures are equal); ``administrasi`` the
    counts of ``ADMINISTRASI_FIELDS`` in that order (None for one left out), or None without the page;
    the rest as decoded (None where null or left out).

    Takes only the usual shape of a body, as served, and gives None for anything else before anything is
    decided: then orjson and the rest of the fast path read the body (and ``_row`` after them). The shape
    taken: an object of the keys above alone, each at most once, with chart or administrasi; strings of
    printable ASCII without escapes; counts written as digits (0 .. 10**9); chart null or ``{party:
    {key: count | null}, "null": null}`` with at least two parties; caleg null or ``{party: {id: count |
    null, "null": null} | null, "null": null}`` of the chart's parties, its ids not beginning with "j";
    administrasi null or ``{field: count | null}`` of its fields; images null or a list of strings and
    nulls; psu, ts and kode_dapil null or a string; the statuses true, false or null. No key is twice in
    one object (a dict would keep one): checked for names and keys unlike the previous body's.
    """
    cdef const uchar *s = <const uchar *>PyBytes_AS_STRING(text)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(text), i, end, at, size, length, first
    cdef int seen = 0, key, field, value = 0, p, q, c, k
    cdef bint chart_null = True, caleg_null = True, same
    cdef long long *data
    cdef Entries chart, caleg
    cdef Items items
    cdef int caleg_of[MAX_ENTRIES]
    cdef char matched[MAX_ENTRIES]
    cdef const uchar *before = NULL
    cdef Py_ssize_t before_size = 0
    cdef uchar *written
    cdef list fields, images = None
    administrasi = psu = ts = status_suara = status_adm = dapil = None
    if out.ob_descr.typecode != ord("q"):
        raise TypeError("out must be an array('q')")
    if previous is not None and len(previous) < 3:
        raise ValueError("previous must be (names, keys, lens, ...) of the previous chart")
    if n >= MAX_TEXT:
        return None
    items.count = 0
    chart.count = caleg.count = 0

    i = _ws(s, 0)
    if s[i] != 123:
        return None
    i = _ws(s, i + 1)
    while True:
        if s[i] != 34:
            return None
        end = _string_end(s, i)
        if end < 0:
            return None
        key = _key(s, i + 1, end, TOP_NAMES, TOP_SIZES, TOP_KEYS)
        if key < 0 or seen & (1 << key):
            return None
        seen |= 1 << key
        i = _ws(s, end + 1)
        if s[i] != 58:
            return None
        i = _ws(s, i + 1)
        if _null(s, i):
            i += 4
        elif key == CHART or key == CALEG:
            if s[i] != 123:
                return None
            if key == CHART:
                i = _entries(s, i, &chart, &items, False)
                chart_null = False
            else:
                i = _entries(s, i, &caleg, &items, True)
                caleg_null = False
            if i < 0:
                return None
        elif key == ADMINISTRASI:
            if s[i] != 123:
                return None
            fields = [None] * 18
            field = 0  # the fields seen, as bits
            i = _ws(s, i + 1)
            if s[i] == 125:
                i += 1
            else:
                while True:
                    if s[i] != 34:
                        return None
                    end = _string_end(s, i)
                    if end < 0:
                        return None
                    k = _key(s, i + 1, end, ADMIN_NAMES, ADMIN_SIZES, 18)
                    if k < 0 or field & (1 << k):
                        return None
                    field |= 1 << k
                    i = _ws(s, end + 1)
                    if s[i] != 58:
                        return None
                    i = _count(s, _ws(s, i + 1), &value)
                    if i < 0:
                        return None
                    if value >= 0:
                        fields[k] = value
                    i = _ws(s, i)
                    if s[i] == 44:
                        i = _ws(s, i + 1)
                    elif s[i] == 125:
                        i += 1
                        break
                    else:
                        return None
            administrasi = tuple(fields)
        elif key == IMAGES:
            if s[i] != 91:  # [
                return None
            images = []
            i = _ws(s, i + 1)
            if s[i] == 93:  # ]
                i += 1
            else:
                while True:
                    if _null(s, i):
                        images.append(None)
                        i += 4
                    elif s[i] == 34:
                        end = _string_end(s, i)
                        if end < 0:
                            return None
                        images.append(_text(s, i + 1, end))
                        i = end + 1
                    else:
                        return None
                    i = _ws(s, i)
                    if s[i] == 44:
                        i = _ws(s, i + 1)
                    elif s[i] == 93:
                        i += 1
                        break
                    else:
                        return None
        elif key == STATUS_SUARA or key == STATUS_ADM:
            if s[i] == 116 and _eq(s + i, b"true", 4):
                flag, i = True, i + 4
            elif s[i] == 102 and _eq(s + i, b"false", 5):
                flag, i = False, i + 5
            else:
                return None
            if key == STATUS_SUARA:
                status_suara = flag
            else:
                status_adm = flag
        else:  # psu, ts, kode_dapil: a string
            if s[i] != 34:
                return None
            end = _string_end(s, i)
            if end < 0:
                return None
            string = _text(s, i + 1, end)
            i = end + 1
            if key == PSU:
                psu = string
            elif key == TS:
                ts = string
            else:
                dapil = string
        i = _ws(s, i)
        if s[i] == 44:
            i = _ws(s, i + 1)
        elif s[i] == 125:
            break
        else:
            return None
    if _ws(s, i + 1) != n or not (seen & ((1 << CHART) | (1 << ADMINISTRASI))):
        return None
    body = (administrasi, images, psu, ts, status_suara, status_adm, dapil)
    if chart_null:
        if not caleg_null:
            return None  # candidate votes without a chart: the general code reads them
        return (None, None, None, None, *body)
    if chart.count < 2:
        return None

    # Each caleg entry to its party's chart entry (every one to one, none twice).
    for q in range(caleg.count):
        matched[q] = 0
    size = 0
    for p in range(chart.count):
        caleg_of[p] = -1
        size += chart.size[p]
        length = chart.name_end[p] - chart.name_start[p]
        for q in range(caleg.count):
            if caleg.name_end[q] - caleg.name_start[q] == length and _eq(s + caleg.name_start[q], s + chart.name_start[p], length):
                if matched[q]:
                    return None
                matched[q] = 1
                caleg_of[p] = q
                size += caleg.size[q]
                break
    for q in range(caleg.count):
        if not matched[q]:
            return None

    # The numbers, party after party: its chart entry's, then its caleg entry's.
    carray.resize(out, size)
    data = out.data.as_longlongs
    if missing:
        del missing[:]
    at = 0
    for p in range(chart.count):
        for c in range(2):
            if c == 0:
                first, length = chart.first[p], chart.size[p]
            elif caleg_of[p] >= 0:
                first, length = caleg.first[caleg_of[p]], caleg.size[caleg_of[p]]
            else:
                break
            for k in range(first, first + length):
                value = items.value[k]
                if value < 0:
                    missing.append(at)
                    value = 0
                data[at] = value
                at += 1

    # The signature (names and keys in that order, with marks that hold the lengths) against the previous body's.
    signature = previous[4] if previous is not None and len(previous) > 4 else None
    same = type(signature) is bytes
    if same:
        before, before_size = <const uchar *>PyBytes_AS_STRING(signature), PyBytes_GET_SIZE(signature)
    written = NULL
    while True:
        at = 0
        for p in range(chart.count):
            at = _sign(written, at, before, before_size, &same, s, chart.name_start[p], chart.name_end[p], 1)
            for c in range(2):
                if c == 0:
                    first, length = chart.first[p], chart.size[p]
                elif caleg_of[p] >= 0:
                    first, length = caleg.first[caleg_of[p]], caleg.size[caleg_of[p]]
                else:
                    break
                for k in range(first, first + length):
                    at = _sign(written, at, before, before_size, &same, s, items.key_start[k], items.key_end[k], 2)
            at = _sign(written, at, before, before_size, &same, s, 0, 0, 3)
        if written != NULL:
            break
        if same and at == before_size:
            return (previous[0], previous[1], previous[2], signature, *body)
        signature = PyBytes_FromStringAndSize(NULL, at)
        written = <uchar *>PyBytes_AS_STRING(signature)

    # A layout unlike the previous body's: its lists, each key checked to be once in its object.
    names, keys, lens = [], [], []
    for p in range(chart.count):
        names.append(_text(s, chart.name_start[p], chart.name_end[p]))
        size = 0
        for c in range(2):
            if c == 0:
                first, length = chart.first[p], chart.size[p]
            elif caleg_of[p] >= 0:
                first, length = caleg.first[caleg_of[p]], caleg.size[caleg_of[p]]
            else:
                break
            for k in range(first, first + length):
                keys.append(_text(s, items.key_start[k], items.key_end[k]))
            size += length
        lens.append(size)
    if len(set(names)) != len(names):
        return None
    at = 0
    for size in lens:
        if len(set(keys[at:at + size])) != size:
            return None
        at += size
    return (names, keys, tuple(lens), signature, *body)
