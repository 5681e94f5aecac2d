/* The two steps of matching whose work grows with the rule set, in C.
 *
 * mastwatch.rules.evaluate decides a document's candidate rules by bits and explains the
 * rules that fire from a packed table (see BranchBits and ExplainTable in compile.py).
 * Both read a rule's part of flat arrays: with thousands of rules that part is cold in the
 * CPU cache, and in Python each step also makes int objects and runs bytecode per rule
 * step. Here the same arrays are read in place. Everything else (the automaton pass, the
 * rules with patterns or proximity) stays in Python, and evaluate.py holds the same steps
 * in Python for an install that could not compile this file; tests run both and compare
 * them with the reference evaluator. Same inputs, same results, same order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define BY_BITS (UINT64_C(1) << 63) /* compile.BY_BITS, and compile.REST in the other word */
#define STACK_ITEMS 64              /* a rule's steps and a match's evidence without malloc */

/* A flat array.array of `itemsize`-byte items of typecode `code`. */
static int
get_array(PyObject *obj, Py_buffer *view, char code, Py_ssize_t itemsize, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_ND) < 0) {
        return -1;
    }
    if (view->ndim != 1 || view->itemsize != itemsize || view->format == NULL ||
        view->format[0] != code || view->format[1] != '\0') {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "%s: expected array('%c')", what, code);
        return -1;
    }
    return 0;
}

static int
append_to(PyObject **list, PyObject *item)
{
    if (*list == NULL && (*list = PyList_New(0)) == NULL) {
        return -1;
    }
    return PyList_Append(*list, item);
}

static PyObject *
or_none(PyObject *list)
{
    if (list == NULL) {
        Py_RETURN_NONE;
    }
    return list;
}

/* The bits of the terms found: each found term's bit in `bit_of`, if it has one. */
static int
common_bits(PyObject *found, PyObject *bit_of, uint64_t *common)
{
    Py_ssize_t pos = 0;
    PyObject *term, *ignored;
    *common = 0;
    while (PyDict_Next(found, &pos, &term, &ignored)) {
        PyObject *bit = PyDict_GetItemWithError(bit_of, term);
        if (bit == NULL) {
            if (PyErr_Occurred()) {
                return -1;
            }
            continue;
        }
        unsigned long long value = PyLong_AsUnsignedLongLong(bit);
        if (value == (unsigned long long)-1 && PyErr_Occurred()) {
            return -1;
        }
        *common |= value;
    }
    return 0;
}

PyDoc_STRVAR(decide_doc,
"decide(found, bit_of, pairs, candidates) -> (fired, rests, others)\n\n"
"Candidates decided by bits (evaluate._firing_by_bits): fired, those whose bits hold\n"
"and that have other branches left (rests), those not decided by bits (others); each a\n"
"list in the candidates' order, or None when empty (fired is always a list).");

static PyObject *
decide(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decide() takes 4 arguments");
        return NULL;
    }
    PyObject *found = args[0], *bit_of = args[1], *candidates = args[3];
    if (!PyDict_Check(found) || !PyDict_Check(bit_of)) {
        PyErr_SetString(PyExc_TypeError, "decide(): found and bit_of must be dicts");
        return NULL;
    }
    Py_buffer pairs;
    if (get_array(args[2], &pairs, 'Q', 8, "decide(): pairs") < 0) {
        return NULL;
    }
    const uint64_t *pair = pairs.buf;
    Py_ssize_t rules = pairs.len / 16;
    PyObject *fired = PyList_New(0), *rests = NULL, *others = NULL, *iterator = NULL;
    PyObject *position;
    uint64_t common;
    if (fired == NULL || common_bits(found, bit_of, &common) < 0 ||
        (iterator = PyObject_GetIter(candidates)) == NULL) {
        goto fail;
    }
    while ((position = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t at = PyLong_AsSsize_t(position);
        if (at < 0 || at >= rules) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_IndexError, "decide(): no rule at position %zd", at);
            }
            Py_DECREF(position);
            goto fail;
        }
        uint64_t need = pair[2 * at], banned = pair[2 * at + 1];
        int failed = 0;
        if (need == 0) {
            failed = append_to(&others, position);
        }
        /* BY_BITS alone: no other required group; common never has that bit (nor REST) */
        else if ((need == BY_BITS || (common & need)) && !(common & banned)) {
            failed = banned & BY_BITS ? append_to(&rests, position)
                                      : PyList_Append(fired, position);
        }
        Py_DECREF(position);
        if (failed < 0) {
            goto fail;
        }
    }
    if (PyErr_Occurred()) {
        goto fail;
    }
    Py_DECREF(iterator);
    PyBuffer_Release(&pairs);
    return Py_BuildValue("(NNN)", fired, or_none(rests), or_none(others));

fail:
    Py_XDECREF(iterator);
    Py_XDECREF(fired);
    Py_XDECREF(rests);
    Py_XDECREF(others);
    PyBuffer_Release(&pairs);
    return NULL;
}

/* A named tuple (a tuple subclass without slots of its own) holding `items`. */
static PyObject *
make_tuple_of(PyTypeObject *type, PyObject *const *items, Py_ssize_t count)
{
    PyObject *made = type->tp_alloc(type, count);
    if (made == NULL) {
        return NULL;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        Py_INCREF(items[index]);
        PyTuple_SET_ITEM(made, index, items[index]);
    }
    return made;
}

static int
check_tuple_type(PyObject *type, const char *what)
{
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type) ||
        ((PyTypeObject *)type)->tp_basicsize != PyTuple_Type.tp_basicsize) {
        PyErr_Format(PyExc_TypeError, "explain(): %s must be a named tuple type", what);
        return -1;
    }
    return 0;
}

/* What explain() reads, checked once per call. */
typedef struct {
    PyObject *found, *hits, *objects, *fields;
    PyTypeObject *evidence_type, *match_type;
    const int32_t *at, *ints;
    Py_ssize_t rules, ints_size, max_evidence;
} Table;

/* Evidence of one found step: each hit of `term` in the fields of `mask`, into `out`. */
static int
step_evidence(const Table *table, PyObject *term, PyObject *written, long mask,
              PyObject **out, Py_ssize_t *count)
{
    PyObject *hits = PyDict_GetItemWithError(table->hits, term);
    if (hits == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetObject(PyExc_KeyError, term);
        }
        return -1;
    }
    if (!PyList_Check(hits)) {
        PyErr_SetString(PyExc_TypeError, "explain(): hits must hold lists");
        return -1;
    }
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(hits); index++) {
        PyObject *hit = PyList_GET_ITEM(hits, index);
        if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 3) {
            PyErr_SetString(PyExc_TypeError, "explain(): a hit must be (field, start, end)");
            return -1;
        }
        long field = PyLong_AsLong(PyTuple_GET_ITEM(hit, 0));
        if (field < 0 || field >= PyTuple_GET_SIZE(table->fields) || field >= 31) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_IndexError, "explain(): no field %ld", field);
            }
            return -1;
        }
        if (!(1L << field & mask) || *count >= table->max_evidence) {
            continue;
        }
        PyObject *items[4] = {written, PyTuple_GET_ITEM(table->fields, field),
                              PyTuple_GET_ITEM(hit, 1), PyTuple_GET_ITEM(hit, 2)};
        if ((out[*count] = make_tuple_of(table->evidence_type, items, 4)) == NULL) {
            return -1;
        }
        ++*count;
    }
    return 0;
}

/* The Match of the rule whose steps start at ints[at]. */
static PyObject *
explain_one(const Table *table, Py_ssize_t at)
{
    PyObject *evidence[STACK_ITEMS * 2], *written_found[STACK_ITEMS];
    Py_ssize_t evidence_count = 0, found_count = 0;
    PyObject *matched = NULL, *evidence_tuple = NULL, *made = NULL;
    if (at + 2 > table->ints_size) {
        goto corrupt;
    }
    Py_ssize_t steps = table->ints[at], first = table->ints[at + 1];
    Py_ssize_t masks = at + 2 + steps, spellings = first + 4;
    if (steps < 0 || masks + steps > table->ints_size || first < 0 ||
        spellings + steps > PyTuple_GET_SIZE(table->objects)) {
        goto corrupt;
    }
    if (steps > STACK_ITEMS) { /* a rule of many terms: explained in Python */
        Py_RETURN_NONE;
    }
    for (Py_ssize_t step = 0; step < steps; step++) {
        PyObject *term = PyLong_FromLong(table->ints[at + 2 + step]);
        if (term == NULL) {
            goto fail;
        }
        PyObject *bits = PyDict_GetItemWithError(table->found, term);
        long mask = table->ints[masks + step];
        long held = bits == NULL ? 0 : PyLong_AsLong(bits);
        if (PyErr_Occurred()) {
            Py_DECREF(term);
            goto fail;
        }
        if (held & mask) {
            PyObject *written = PyTuple_GET_ITEM(table->objects, spellings + step);
            written_found[found_count++] = written;
            if (step_evidence(table, term, written, mask, evidence, &evidence_count) < 0) {
                Py_DECREF(term);
                goto fail;
            }
        }
        Py_DECREF(term);
    }
    matched = PyTuple_New(found_count);
    evidence_tuple = PyTuple_New(evidence_count);
    if (matched == NULL || evidence_tuple == NULL) {
        goto fail;
    }
    for (Py_ssize_t index = 0; index < found_count; index++) {
        Py_INCREF(written_found[index]);
        PyTuple_SET_ITEM(matched, index, written_found[index]);
    }
    for (Py_ssize_t index = 0; index < evidence_count; index++) {
        PyTuple_SET_ITEM(evidence_tuple, index, evidence[index]); /* the reference moves */
    }
    evidence_count = 0;
    PyObject **header = &PyTuple_GET_ITEM(table->objects, first);
    PyObject *items[6] = {header[0], header[1], header[2], matched, header[3], evidence_tuple};
    made = make_tuple_of(table->match_type, items, 6);
    goto done;

corrupt:
    PyErr_Format(PyExc_ValueError, "explain(): the table has no rule at %zd", at);
fail:
    made = NULL;
done:
    for (Py_ssize_t index = 0; index < evidence_count; index++) {
        Py_DECREF(evidence[index]);
    }
    Py_XDECREF(matched);
    Py_XDECREF(evidence_tuple);
    return made;
}

PyDoc_STRVAR(explain_doc,
"explain(found, hits, at, ints, objects, fired, fields, evidence, match, max_evidence)\n\n"
"The Match of each rule position in fired, from the packed ExplainTable (at, ints,\n"
"objects); None where Python explains it: the table has no entry (at[position] < 0),\n"
"or the rule has more steps than fit on the stack here.");

static PyObject *
explain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "explain() takes 10 arguments");
        return NULL;
    }
    Table table = {.found = args[0], .hits = args[1], .objects = args[4], .fields = args[6]};
    if (!PyDict_Check(table.found) || !PyDict_Check(table.hits) ||
        !PyTuple_Check(table.objects) || !PyTuple_Check(table.fields)) {
        PyErr_SetString(PyExc_TypeError, "explain(): found, hits: dicts; objects, fields: tuples");
        return NULL;
    }
    if (check_tuple_type(args[7], "evidence") < 0 || check_tuple_type(args[8], "match") < 0) {
        return NULL;
    }
    table.evidence_type = (PyTypeObject *)args[7];
    table.match_type = (PyTypeObject *)args[8];
    table.max_evidence = PyLong_AsSsize_t(args[9]);
    if (table.max_evidence < 0 || table.max_evidence > STACK_ITEMS * 2) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "explain(): max_evidence above %d", STACK_ITEMS * 2);
        }
        return NULL;
    }
    Py_buffer at_view, ints_view;
    if (get_array(args[2], &at_view, 'i', 4, "explain(): at") < 0) {
        return NULL;
    }
    if (get_array(args[3], &ints_view, 'i', 4, "explain(): ints") < 0) {
        PyBuffer_Release(&at_view);
        return NULL;
    }
    table.at = at_view.buf;
    table.rules = at_view.len / 4;
    table.ints = ints_view.buf;
    table.ints_size = ints_view.len / 4;
    PyObject *matches = NULL, *fired = PySequence_Fast(args[5], "explain(): fired");
    if (fired == NULL || (matches = PyList_New(PySequence_Fast_GET_SIZE(fired))) == NULL) {
        goto fail;
    }
    for (Py_ssize_t index = 0; index < PySequence_Fast_GET_SIZE(fired); index++) {
        Py_ssize_t position = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fired, index));
        if (position < 0 || position >= table.rules) {
            if (!PyErr_Occurred()) {
                PyErr_Format(PyExc_IndexError, "explain(): no rule at position %zd", position);
            }
            goto fail;
        }
        PyObject *made;
        if (table.at[position] < 0) {
            made = Py_NewRef(Py_None);
        }
        else if ((made = explain_one(&table, table.at[position])) == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(matches, index, made);
    }
    Py_DECREF(fired);
    PyBuffer_Release(&at_view);
    PyBuffer_Release(&ints_view);
    return matches;

fail:
    Py_XDECREF(fired);
    Py_XDECREF(matches);
    PyBuffer_Release(&at_view);
    PyBuffer_Release(&ints_view);
    return NULL;
}

static PyMethodDef methods[] = {
    {"decide", (PyCFunction)(void (*)(void))decide, METH_FASTCALL, decide_doc},
    {"explain", (PyCFunction)(void (*)(void))explain, METH_FASTCALL, explain_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mastwatch.rules._native",
    .m_doc = "Deciding candidates by bits and explaining matches from the packed table, in C.",
    .m_size = 0,
    .m_methods = methods,
};

#ifndef SOURCE_SHA256 /* setup.py defines it: the sha256 of this file as it was built */
#define SOURCE_SHA256 ""
#endif

PyMODINIT_FUNC
PyInit__native(void)
{
    PyObject *made = PyModule_Create(&module);
    if (made != NULL && PyModule_AddStringConstant(made, "SOURCE_SHA256", SOURCE_SHA256) < 0) {
        Py_DECREF(made);
        return NULL;
    }
    return made;
}
