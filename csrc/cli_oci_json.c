/* config.json's values as Python's json module and dict read them, for the
 * C create (csrc/cli_oci_create*.c, cli_oci_mounts.c, cli_oci_cgmake.c,
 * cli_oci_seccomp.c), whose every test must decide as nsfast/oci does. */
#include "cli_oci_create.h"

#include <string.h>

struct json_object *oci_json_get(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    if (obj && json_object_is_type(obj, json_type_object))
        json_object_object_get_ex(obj, key, &v);
    return v;
}

int oci_json_truthy(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        return 0;
    case json_type_boolean:
        return json_object_get_boolean(v);
    case json_type_int:
        return json_object_get_int64(v) != 0;
    case json_type_double:
        return json_object_get_double(v) != 0.0;   /* NaN is true, as in Python */
    case json_type_string:
        return json_object_get_string_len(v) != 0;
    case json_type_array:
        return json_object_array_length(v) != 0;
    case json_type_object:
        return json_object_object_length(v) != 0;
    }
    return 1;
}

int oci_json_given(struct json_object *obj, const char *key)
{
    return oci_json_truthy(oci_json_get(obj, key));
}

int oci_json_only_keys(struct json_object *obj, const char *const *names)
{
    if (!obj)
        return 0;
    if (!json_object_is_type(obj, json_type_object))
        return OCI_FALLBACK;
    json_object_object_foreach(obj, key, value) {
        (void)value;
        const char *const *n = names;
        while (*n && strcmp(*n, key) != 0)
            n++;
        if (!*n)
            return OCI_FALLBACK;
    }
    return 0;
}
