/*
 * fuzz_persona.c - the personas file (egress/persona.c on inih), as an
 * operator writes it, then what a call does with it: choose a persona by
 * name and by dialled number and render its text prompt with custom
 * parameters (which come from Exotel, i.e. from outside). Oracles: every
 * loaded persona has a name, voice and text, can be found by its name,
 * and renders into a bounded, NUL-terminated prompt.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "persona.h"
#include "ppurl.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	persona_lib_init();
	return 0;
}

static void
use(const struct personas *ps, const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "order_id", "token", "from", "x" };
	char                     val[64], buf[512], err[256];
	const char              *values[4];
	struct ppurl             u;
	size_t                   n = personas_count(ps);

	/* A custom parameter value made of the file's own last bytes. */
	size_t vn = size < sizeof(val) - 1 ? size : sizeof(val) - 1;
	memcpy(val, data + size - vn, vn);
	val[vn]   = '\0';
	values[0] = val, values[1] = "SECRET", values[2] = "{to}";
	values[3]             = "";
	struct persona_vars v = { .from = "+919800000000",
		.to                     = val,
		.keys                   = keys,
		.values                 = values,
		.n                      = 4 };

	FUZZ_CHECK(n >= 1 && personas_default(ps) == personas_at(ps, 0));
	for (size_t i = 0; i < n; i++) {
		const struct persona *p = personas_at(ps, i);
		FUZZ_CHECK(p && p->name && p->voice && p->text && p->source);
		FUZZ_CHECK(personas_find(ps, p->name) != NULL);
		for (size_t len = 1; len <= sizeof(buf); len *= 7) {
			int rv = persona_render(p, &v, buf, len);
			FUZZ_CHECK(rv == 0 || rv == E2BIG);
			FUZZ_CHECK(strlen(buf) < len);
			/* {token} is never filled in. */
			if (!strstr(p->text, "SECRET")
			    && !strstr(val, "SECRET"))
				FUZZ_CHECK(!strstr(buf, "SECRET"));
		}
		enum persona_why why;
		bool             unknown;
		FUZZ_CHECK(persona_choose(ps, p->name, val, &why, &unknown));
		FUZZ_CHECK(!unknown);
	}
	enum persona_why why;
	bool             unknown;
	FUZZ_CHECK(persona_choose(ps, val, val, &why, &unknown) != NULL);
	personas_for_number(ps, val);
	FUZZ_CHECK(
	    ppurl_parse(&u, "ws://127.0.0.1:8998", err, sizeof(err)) == 0);
	int rv = personas_check(ps, &u, 1, err, sizeof(err));
	FUZZ_CHECK(rv == 0 || rv == EINVAL || rv == E2BIG);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct personas *ps = NULL;
	char             path[64], err[512];
	int              fd = memfd_create("personas", MFD_CLOEXEC), rv;

	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, data, size) == (ssize_t)size);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rv = personas_load(
	    &ps, path, "NATF2.pt", "Default text.", err, sizeof(err));
	FUZZ_CHECK(rv == 0 || rv == EINVAL || rv == ENOMEM);
	if (rv == 0) {
		use(ps, data, size);
		personas_free(ps);
	} else
		FUZZ_CHECK(err[0] != '\0');
	close(fd);
	return 0;
}
