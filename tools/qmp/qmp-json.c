/* Reading members of QMP answers (qmp.h). */
#include <stdbool.h>
#include <stdint.h>

#include "dcres/qmp.h"

const char *dcres_qmp_get_str(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

bool dcres_qmp_get_u64(struct json_object *obj, const char *key, uint64_t *out)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return false;
	if (json_object_is_type(v, json_type_int)) {
		/* json-c keeps values above INT64_MAX as unsigned. */
		*out = json_object_get_uint64(v);
		return true;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		*out = d > 0 ? (uint64_t)d : 0;
		return true;
	}
	return false;
}

bool dcres_qmp_get_bool(struct json_object *obj, const char *key)
{
	struct json_object *v;

	return obj && json_object_object_get_ex(obj, key, &v) &&
	       json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

struct json_object *dcres_qmp_get_obj(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!obj || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	if (!json_object_is_type(v, json_type_object) && !json_object_is_type(v, json_type_array))
		return NULL;
	return v;
}
