/* empty.c - placeholder translation unit for a module folder with no sources yet. */
typedef int sts_empty_translation_unit;
