/* A minimal safetensors reader for the C API tests: the format is an
 * 8-byte little-endian header length, a JSON header naming each tensor's
 * dtype, shape and data_offsets (plus string metadata under
 * "__metadata__"), then the raw little-endian data. */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_file {
    unsigned char *bytes;
    size_t len;
    const char *header;
    size_t header_len;
    const unsigned char *data;
    size_t data_len;
} st_file;

typedef struct st_tensor {
    char dtype[8];
    size_t rank;
    size_t shape[8];
    size_t count;  /* product of the shape */
    size_t nbytes; /* data_offsets[1] - data_offsets[0] */
    const unsigned char *raw;
} st_tensor;

/* 0 on success. */
int st_open(st_file *f, const char *path);
void st_close(st_file *f);
/* 0 if the tensor exists and its byte size fits its dtype and shape. */
int st_find(const st_file *f, const char *name, st_tensor *t);
/* 0 if the metadata key exists; copies its (unescaped) value. */
int st_meta(const st_file *f, const char *key, char *value, size_t cap);
/* A malloc'd, aligned copy of the raw data (any dtype). */
void *st_copy(const st_tensor *t);
/* A malloc'd copy of an I64 tensor as size_t (negative values become 0). */
size_t *st_lens(const st_tensor *t);

#endif
