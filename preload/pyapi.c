#include "pyapi.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

/* Opaque: we never look inside Python objects from here. */
typedef struct py_object PyObject;
typedef PyObject *(*py_cfunction)(PyObject *, PyObject *);

/* The stable-ABI PyMethodDef, identical in every CPython 3 release. */
struct py_method_def {
    const char *ml_name;
    py_cfunction ml_meth;
    int ml_flags;
    const char *ml_doc;
};
#define PY_METH_NOARGS 0x0004

static struct {
    PyObject *(*import_module)(const char *);
    PyObject *(*get_attr)(PyObject *, const char *);
    PyObject *(*cfunction_new)(struct py_method_def *, PyObject *, PyObject *);
    PyObject *(*call)(PyObject *, PyObject *, PyObject *);
    PyObject *(*tuple_new)(ssize_t);
    int (*tuple_set)(PyObject *, ssize_t, PyObject *);
    PyObject *(*dict_new)(void);
    int (*dict_set)(PyObject *, const char *, PyObject *);
    void (*decref)(PyObject *);
    void (*incref)(PyObject *);
    void (*err_clear)(void);
    void (*err_fetch)(PyObject **, PyObject **, PyObject **);
    void (*err_restore)(PyObject *, PyObject *, PyObject *);
    PyObject *none;
} py;

static struct pyprof_hooks hooks;

static void *sym(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

static int parse_version(struct pyprof_pyapi *api)
{
    const char *(*get_version)(void) = (const char *(*)(void))sym("Py_GetVersion");
    if (get_version == NULL)
        return -ENOTSUP;
    /* "3.12.1 (main, ...) [GCC ...]": safe to call before initialisation. */
    const char *text = get_version();
    if (sscanf(text, "%d.%d.%d", &api->major, &api->minor, &api->micro) < 2)
        return -ENOTSUP;
    size_t len = strcspn(text, " +");
    if (len >= sizeof(api->version))
        len = sizeof(api->version) - 1;
    memcpy(api->version, text, len);
    api->version[len] = '\0';
    return 0;
}

int pyprof_pyapi_load(struct pyprof_pyapi *api)
{
    memset(api, 0, sizeof(*api));
    api->is_initialized = (int (*)(void))sym("Py_IsInitialized");
    if (api->is_initialized == NULL)
        return -ENOENT;
    return parse_version(api);
}

int pyprof_pyapi_resolve(struct pyprof_pyapi *api)
{
    api->add_pending_call = (int (*)(int (*)(void *), void *))sym("Py_AddPendingCall");
    api->at_exit = (int (*)(void (*)(void)))sym("Py_AtExit");
    api->add_audit_hook = (int (*)(int (*)(const char *, void *, void *), void *))
        sym("PySys_AddAuditHook");
    api->runtime = (uintptr_t)sym("_PyRuntime");
    api->code_type = (uintptr_t)sym("PyCode_Type");
    api->frame_type = (uintptr_t)sym("PyFrame_Type");

    py.import_module = (PyObject * (*)(const char *)) sym("PyImport_ImportModule");
    py.get_attr = (PyObject * (*)(PyObject *, const char *)) sym("PyObject_GetAttrString");
    py.cfunction_new = (PyObject * (*)(struct py_method_def *, PyObject *, PyObject *))
        sym("PyCFunction_NewEx");
    py.call = (PyObject * (*)(PyObject *, PyObject *, PyObject *)) sym("PyObject_Call");
    py.tuple_new = (PyObject * (*)(ssize_t)) sym("PyTuple_New");
    py.tuple_set = (int (*)(PyObject *, ssize_t, PyObject *))sym("PyTuple_SetItem");
    py.dict_new = (PyObject * (*)(void)) sym("PyDict_New");
    py.dict_set = (int (*)(PyObject *, const char *, PyObject *))sym("PyDict_SetItemString");
    py.decref = (void (*)(PyObject *))sym("Py_DecRef");
    py.incref = (void (*)(PyObject *))sym("Py_IncRef");
    py.err_clear = (void (*)(void))sym("PyErr_Clear");
    py.err_fetch = (void (*)(PyObject **, PyObject **, PyObject **))sym("PyErr_Fetch");
    py.err_restore = (void (*)(PyObject *, PyObject *, PyObject *))sym("PyErr_Restore");
    py.none = (PyObject *)sym("_Py_NoneStruct");

    if (!api->add_pending_call || !api->at_exit || !api->add_audit_hook || !api->runtime ||
        !api->code_type || !py.import_module || !py.get_attr || !py.cfunction_new || !py.call ||
        !py.tuple_new || !py.tuple_set || !py.dict_new || !py.dict_set || !py.decref ||
        !py.incref || !py.err_clear || !py.err_fetch || !py.err_restore || !py.none)
        return -ENOTSUP;
    return 0;
}

static PyObject *none(void)
{
    py.incref(py.none);
    return py.none;
}

static PyObject *on_exit_cb(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    hooks.at_exit();
    return none();
}

static PyObject *before_fork_cb(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    hooks.before_fork();
    return none();
}

static PyObject *after_parent_cb(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    hooks.after_fork_parent();
    return none();
}

static PyObject *after_child_cb(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    hooks.after_fork_child();
    return none();
}

static struct py_method_def method_defs[] = {
    {"_pyprof_atexit", on_exit_cb, PY_METH_NOARGS, NULL},
    {"_pyprof_before_fork", before_fork_cb, PY_METH_NOARGS, NULL},
    {"_pyprof_after_fork_parent", after_parent_cb, PY_METH_NOARGS, NULL},
    {"_pyprof_after_fork_child", after_child_cb, PY_METH_NOARGS, NULL},
};

/* module.name(*args as one positional callable) or (**kwargs); steals nothing. */
static int call_attr(const char *module, const char *name, PyObject *args, PyObject *kwargs)
{
    int rc = -EIO;
    PyObject *mod = py.import_module(module), *fn = NULL, *res = NULL;
    if (mod == NULL)
        goto out;
    fn = py.get_attr(mod, name);
    if (fn == NULL)
        goto out;
    res = py.call(fn, args, kwargs);
    if (res != NULL)
        rc = 0;
out:
    if (res) py.decref(res);
    if (fn) py.decref(fn);
    if (mod) py.decref(mod);
    return rc;
}

static int register_atexit(PyObject *cb)
{
    PyObject *args = py.tuple_new(1);
    if (args == NULL)
        return -EIO;
    py.incref(cb);
    py.tuple_set(args, 0, cb); /* steals the reference */
    int rc = call_attr("atexit", "register", args, NULL);
    py.decref(args);
    return rc;
}

static int register_at_fork(PyObject *before, PyObject *parent, PyObject *child)
{
    int rc = -EIO;
    PyObject *args = py.tuple_new(0), *kwargs = py.dict_new();
    if (args == NULL || kwargs == NULL)
        goto out;
    if (py.dict_set(kwargs, "before", before) || py.dict_set(kwargs, "after_in_parent", parent) ||
        py.dict_set(kwargs, "after_in_child", child))
        goto out;
    rc = call_attr("posix", "register_at_fork", args, kwargs);
out:
    if (kwargs) py.decref(kwargs);
    if (args) py.decref(args);
    return rc;
}

int pyprof_pyapi_register_hooks(const struct pyprof_hooks *h)
{
    PyObject *fn[4] = {NULL}, *type, *value, *traceback;
    int rc = -EIO;
    hooks = *h;
    py.err_fetch(&type, &value, &traceback);
    for (int i = 0; i < 4; i++)
        if ((fn[i] = py.cfunction_new(&method_defs[i], NULL, NULL)) == NULL)
            goto out;
    if (register_atexit(fn[0]) != 0)
        goto out;
    rc = register_at_fork(fn[1], fn[2], fn[3]);
out:
    for (int i = 0; i < 4; i++)
        if (fn[i]) py.decref(fn[i]);
    if (rc != 0)
        py.err_clear();
    py.err_restore(type, value, traceback);
    return rc;
}
