/* VM identifiers: 16-byte UUIDs, as QEMU's -uuid. */
#ifndef DCRES_UUID_H
#define DCRES_UUID_H

#include <stdint.h>

#define DCRES_UUID_STR_LEN 37 /* 36 characters and the terminator */

/* Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"; returns 0 or -EINVAL. */
int dcres_uuid_parse(const char *s, uint8_t uuid[16]);
/* Formats uuid into out (DCRES_UUID_STR_LEN bytes). */
void dcres_uuid_format(const uint8_t uuid[16], char out[DCRES_UUID_STR_LEN]);

#endif
