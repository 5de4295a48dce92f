from brevitas_minifloat.formats import MinifloatFormat, as_format
