#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    if (fseek(fp, 0, SEEK_END) != 0) { fclose(fp); return -1; }
    long size = ftell(fp);
    if (size < 8 || fseek(fp, 0, SEEK_SET) != 0) { fclose(fp); return -1; }
    f->len = (size_t)size;
    f->bytes = malloc(f->len);
    if (!f->bytes || fread(f->bytes, 1, f->len, fp) != f->len) { fclose(fp); st_close(f); return -1; }
    fclose(fp);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->bytes[i];
    if (n > f->len - 8) { st_close(f); return -1; }
    f->header = (const char *)f->bytes + 8;
    f->header_len = (size_t)n;
    f->data = f->bytes + 8 + n;
    f->data_len = f->len - 8 - (size_t)n;
    return 0;
}

void st_close(st_file *f) {
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

static size_t skip_space(const char *t, size_t i, size_t end) {
    while (i < end && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) i++;
    return i;
}

/* Index just past the closing quote of the string starting at t[i] == '"'. */
static size_t skip_string(const char *t, size_t i, size_t end) {
    for (i++; i < end; i++) {
        if (t[i] == '\\') i++;
        else if (t[i] == '"') return i + 1;
    }
    return end;
}

/* In the object whose '{' is at t[open], the index of member `name`'s
 * value, or (size_t)-1. Only members of this object match, never nested
 * ones or string values. */
static size_t member(const char *t, size_t open, size_t end, const char *name) {
    size_t depth = 0, want = strlen(name);
    for (size_t i = open + 1; i < end;) {
        char c = t[i];
        if (c == '"') {
            size_t close = skip_string(t, i, end);
            size_t colon = skip_space(t, close, end);
            if (depth == 0 && colon < end && t[colon] == ':' && close - i - 2 == want &&
                memcmp(t + i + 1, name, want) == 0)
                return skip_space(t, colon + 1, end);
            i = close;
            continue;
        }
        if (c == '{' || c == '[') depth++;
        if (c == '}' || c == ']') {
            if (depth == 0) return (size_t)-1;
            depth--;
        }
        i++;
    }
    return (size_t)-1;
}

/* Parses up to `cap` unsigned integers of the array at t[i] == '['. */
static int parse_uints(const char *t, size_t i, size_t end, size_t *out, size_t cap, size_t *count) {
    if (i >= end || t[i] != '[') return -1;
    *count = 0;
    for (i++; i < end;) {
        i = skip_space(t, i, end);
        if (i < end && t[i] == ']') return 0;
        if (i >= end || t[i] < '0' || t[i] > '9' || *count == cap) return -1;
        size_t v = 0;
        while (i < end && t[i] >= '0' && t[i] <= '9') v = v * 10 + (size_t)(t[i++] - '0');
        out[(*count)++] = v;
        i = skip_space(t, i, end);
        if (i < end && t[i] == ',') i++;
    }
    return -1;
}

static int copy_string(const char *t, size_t i, size_t end, char *out, size_t cap) {
    if (i >= end || t[i] != '"' || cap == 0) return -1;
    size_t n = 0;
    for (i++; i < end && t[i] != '"'; i++) {
        if (t[i] == '\\' && i + 1 < end) i++;
        if (n + 1 < cap) out[n++] = t[i];
    }
    out[n] = '\0';
    return i < end ? 0 : -1;
}

static size_t dtype_size(const char *dtype) {
    if (!strcmp(dtype, "F32")) return 4;
    if (!strcmp(dtype, "I64")) return 8;
    if (!strcmp(dtype, "BF16") || !strcmp(dtype, "F16")) return 2;
    if (!strcmp(dtype, "I8") || !strcmp(dtype, "U8")) return 1;
    return 0;
}

int st_find(const st_file *f, const char *name, st_tensor *t) {
    const char *h = f->header;
    size_t end = f->header_len, root = skip_space(h, 0, end);
    if (root >= end || h[root] != '{') return -1;
    size_t obj = member(h, root, end, name);
    if (obj == (size_t)-1 || h[obj] != '{') return -1;
    memset(t, 0, sizeof *t);
    size_t dtype = member(h, obj, end, "dtype"), shape = member(h, obj, end, "shape");
    size_t offsets = member(h, obj, end, "data_offsets"), off[2], n_off;
    if (dtype == (size_t)-1 || shape == (size_t)-1 || offsets == (size_t)-1) return -1;
    if (copy_string(h, dtype, end, t->dtype, sizeof t->dtype)) return -1;
    if (parse_uints(h, shape, end, t->shape, 8, &t->rank)) return -1;
    if (parse_uints(h, offsets, end, off, 2, &n_off) || n_off != 2) return -1;
    if (off[0] > off[1] || off[1] > f->data_len) return -1;
    t->count = 1;
    for (size_t d = 0; d < t->rank; d++) t->count *= t->shape[d];
    t->nbytes = off[1] - off[0];
    t->raw = f->data + off[0];
    return t->nbytes == t->count * dtype_size(t->dtype) && dtype_size(t->dtype) ? 0 : -1;
}

int st_meta(const st_file *f, const char *key, char *value, size_t cap) {
    const char *h = f->header;
    size_t end = f->header_len, root = skip_space(h, 0, end);
    if (root >= end || h[root] != '{') return -1;
    size_t meta = member(h, root, end, "__metadata__");
    if (meta == (size_t)-1 || h[meta] != '{') return -1;
    size_t v = member(h, meta, end, key);
    return v == (size_t)-1 ? -1 : copy_string(h, v, end, value, cap);
}

void *st_copy(const st_tensor *t) {
    void *p = malloc(t->nbytes ? t->nbytes : 1);
    if (p) memcpy(p, t->raw, t->nbytes);
    return p;
}

size_t *st_lens(const st_tensor *t) {
    size_t *lens = malloc((t->count ? t->count : 1) * sizeof *lens);
    if (!lens) return NULL;
    for (size_t i = 0; i < t->count; i++) {
        int64_t v;
        memcpy(&v, t->raw + 8 * i, 8);
        lens[i] = v < 0 ? 0 : (size_t)v;
    }
    return lens;
}
