/*
 * persona_test.c - the personas file, choosing a persona, and filling in
 * its text prompt.
 */
#include "persona.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ppurl.h"
#include "test.h"

static char path[64];
static char err[512];

/* Writes s to a fresh temporary file named in path. */
static int
write_file(const char *s)
{
	FILE *f;
	int   fd;

	snprintf(path, sizeof(path), "/tmp/persona_test.XXXXXX");
	if ((fd = mkstemp(path)) < 0)
		return 1;
	f = fdopen(fd, "w");
	if (!f)
		return 1;
	fputs(s, f);
	fclose(f);
	return 0;
}

/* Loads s as a personas file; returns personas_load's code. */
static int
load(struct personas **ps, const char *s)
{
	int rc;

	if (write_file(s))
		return -1;
	rc = personas_load(
	    ps, path, "NATF2.pt", "Default text.", err, sizeof(err));
	unlink(path);
	return rc;
}

static const char example[]
    = "; personas for the test\n"
      "# another comment\n"
      "[sales]\n"
      "voice = NATM1.pt\n"
      "text = You sell solar panels for Acme; the caller is {from}\n"
      "    and rang {to}.\n"
      "\tTheir order is {order_id}.\n"
      "numbers = +91 80 4000 1234, 0804000-1235\n"
      "\n"
      "[Support]\n"
      "voice_prompt = VARF2.pt\n"
      "text_prompt =\n"
      "    You help with repairs.\n"
      "number = 5550100\n"
      "\n"
      "[quiet]\n"
      "text = Say little.\n";

static int
test_parse_example(void)
{
	struct personas      *ps;
	const struct persona *p;

	persona_lib_init();
	TEST_EQ(load(&ps, example), 0);
	TEST_EQ(personas_count(ps), 4);
	/* No [default] section: the settings make the default, first. */
	p = personas_default(ps);
	TEST_STREQ(p->name, "default");
	TEST_STREQ(p->voice, "NATF2.pt");
	TEST_STREQ(p->text, "Default text.");
	TEST_ASSERT(!p->templated);
	TEST_ASSERT(personas_at(ps, 0) == p);

	p = personas_find(ps, "sales");
	TEST_ASSERT(p);
	TEST_STREQ(p->voice, "NATM1.pt");
	/* Continuation lines join with a space; ';' in prose is text. */
	TEST_STREQ(p->text,
	    "You sell solar panels for Acme; the caller is {from} and rang "
	    "{to}. Their order is {order_id}.");
	TEST_ASSERT(p->templated);
	TEST_ASSERT(strstr(p->source, ":4") != NULL);

	/* Names ignore case; aliases work; an empty first line is fine. */
	p = personas_find(ps, "support");
	TEST_ASSERT(p);
	TEST_STREQ(p->name, "Support");
	TEST_STREQ(p->voice, "VARF2.pt");
	TEST_STREQ(p->text, "You help with repairs.");
	/* No voice: the default's. */
	p = personas_find(ps, "quiet");
	TEST_STREQ(p->voice, "NATF2.pt");
	TEST_ASSERT(personas_find(ps, "nobody") == NULL);
	TEST_ASSERT(personas_find(ps, "") == NULL);
	personas_free(ps);
	return 0;
}

static int
test_default_section_and_long_line(void)
{
	struct personas *ps;
	static char      file[20000];
	char            *p = file;

	persona_lib_init();
	p += sprintf(p, "[default]\ntext = ");
	for (int i = 0; i < 5000; i++)
		*p++ = (char)('a' + i % 26);
	p += sprintf(p, "\n[other]\nvoice = X.pt\ntext = t\n");
	TEST_EQ(load(&ps, file), 0);
	/* [default] replaces the settings' text; its voice stays. */
	TEST_STREQ(personas_default(ps)->voice, "NATF2.pt");
	TEST_EQ(strlen(personas_default(ps)->text), 5000);
	TEST_STREQ(personas_default(ps)->name, "default");
	TEST_EQ(personas_count(ps), 2);
	personas_free(ps);

	/* Without a file: just the default. */
	TEST_EQ(personas_load(&ps, NULL, "V.pt", "T", err, sizeof(err)), 0);
	TEST_EQ(personas_count(ps), 1);
	TEST_STREQ(personas_default(ps)->text, "T");
	personas_free(ps);
	return 0;
}

/* Each bad file is refused with a message naming what and where. */
static int
test_errors(void)
{
	static const struct {
		const char *file, *want;
	} bad[] = {
		{ "[a]\ntext = x\ncolour = red\n",
		    "line 3: unknown setting "
		    "'colour'" },
		{ "[a]\ntext = x\ntext = y\n",
		    "line 3: 'text' is set twice "
		    "for persona a" },
		{ "text = x\n", "line 1: 'text' is outside any" },
		{ "[a b]\ntext = x\n", "[a b] is not a persona name" },
		{ "[a]\nvoice = V.pt\n", "persona a" },
		{ "[a]\ntext = x\nnumbers = 123456\n[b]\ntext = y\n"
		  "numbers = 123-456\n",
		    "number 123456 is answered by both persona a and "
		    "persona b" },
		{ "[a]\ntext = x\nnumbers = +91 98450 12345\n[b]\ntext = y\n"
		  "numbers = 09845012345\n",
		    "answered by both" },
		{ "[a]\ntext = x\nnumbers = ab\n",
		    "'ab' is not a phone "
		    "number" },
		{ "[a]\ntext = x\nthis line is nonsense\n",
		    "line 3: not a "
		    "[persona]" },
		{ "[a]\nvoice = A.pt\n    B.pt\ntext = x\n",
		    "voice of persona a must be on one line" },
	};
	struct personas *ps = NULL;
	static char      file[PERSONA_LINE_MAX + 100];

	persona_lib_init();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (load(&ps, bad[i].file) != EINVAL
		    || !strstr(err, bad[i].want)) {
			fprintf(stderr, "  case %zu: err '%s', want '%s'\n", i,
			    err, bad[i].want);
			TEST_ASSERT(0);
		}
	}
	/* A line over the limit is refused, not cut. */
	strcpy(file, "[a]\ntext = ");
	memset(file + strlen(file), 'x', PERSONA_LINE_MAX);
	strcat(file, "\n");
	TEST_EQ(load(&ps, file), EINVAL);
	TEST_ASSERT(strstr(err, "line 2: longer than") != NULL);
	/* A file that is not there. */
	TEST_EQ(personas_load(
	            &ps, "/nonexistent/p.ini", "V", "T", err, sizeof(err)),
	    EINVAL);
	TEST_ASSERT(strstr(err, "cannot read '/nonexistent/p.ini'") != NULL);
	/* Settings without any voice. */
	TEST_EQ(personas_load(&ps, NULL, "", "T", err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "no voice") != NULL);
	return 0;
}

static int
test_choose(void)
{
	struct personas      *ps;
	const struct persona *p;
	enum persona_why      why;
	bool                  unknown;

	persona_lib_init();
	TEST_EQ(load(&ps, example), 0);
	/* The custom parameter wins over the number. */
	p = persona_choose(ps, "SUPPORT", "08040001234", &why, &unknown);
	TEST_STREQ(p->name, "Support");
	TEST_EQ(why, PERSONA_BY_NAME);
	TEST_ASSERT(!unknown);
	/* The dialled number, in another format. */
	p = persona_choose(ps, NULL, "08040001234", &why, &unknown);
	TEST_STREQ(p->name, "sales");
	TEST_EQ(why, PERSONA_BY_NUMBER);
	p = persona_choose(ps, "", "+91-80-40001235", &why, &unknown);
	TEST_STREQ(p->name, "sales");
	/* A short number must match exactly. */
	p = persona_choose(ps, NULL, "555-0100", &why, &unknown);
	TEST_STREQ(p->name, "Support");
	p = persona_choose(ps, NULL, "15550100", &why, &unknown);
	TEST_STREQ(p->name, "default");
	/* An unknown name falls back (and says so). */
	p = persona_choose(ps, "ghost", "08040001234", &why, &unknown);
	TEST_STREQ(p->name, "sales");
	TEST_ASSERT(unknown);
	p = persona_choose(ps, "ghost", "", &why, &unknown);
	TEST_STREQ(p->name, "default");
	TEST_EQ(why, PERSONA_BY_DEFAULT);
	p = persona_choose(ps, NULL, NULL, &why, &unknown);
	TEST_STREQ(p->name, "default");
	TEST_ASSERT(!unknown);
	/* "default" by name is the default. */
	p = persona_choose(ps, "default", "08040001234", &why, &unknown);
	TEST_STREQ(p->name, "default");
	TEST_EQ(why, PERSONA_BY_NAME);

	TEST_ASSERT(persona_number_match("+91 98450 12345", "098450-12345"));
	TEST_ASSERT(persona_number_match("12345", "1 2 3 4 5"));
	TEST_ASSERT(!persona_number_match("12345", "012345"));
	TEST_ASSERT(!persona_number_match("", ""));
	TEST_ASSERT(!persona_number_match("abc", "abc"));
	personas_free(ps);
	return 0;
}

static int
test_render(void)
{
	struct persona      p      = { .name = "t" };
	const char         *keys[] = { "order_id", "token", "evil", "long" };
	char                lng[600];
	const char         *vals[] = { "A-42", "secret", "x\ny\tz", lng };
	struct persona_vars v      = { .from = "0999",
		     .to                     = "0888",
		     .keys                   = keys,
		     .values                 = vals,
		     .n                      = 4 };
	char                buf[1024];

	memset(lng, 'L', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	p.text               = "Caller {from} rang {to} about {order_id}.";
	TEST_EQ(persona_render(&p, &v, buf, sizeof(buf)), 0);
	TEST_STREQ(buf, "Caller 0999 rang 0888 about A-42.");
	/* No values: every placeholder is empty. */
	TEST_EQ(persona_render(&p, NULL, buf, sizeof(buf)), 0);
	TEST_STREQ(buf, "Caller  rang  about .");
	/* Secrets never, unknown keys empty, control characters become
	 * spaces, not-placeholders stay, {{ is a brace. */
	p.text = "[{token}][{missing}][{evil}][{not one}][{{x}][{}][a}b]";
	TEST_EQ(persona_render(&p, &v, buf, sizeof(buf)), 0);
	TEST_STREQ(buf, "[][][x y z][{not one}][{x}][{}][a}b]");
	/* A value is cut at PERSONA_VALUE_MAX bytes. */
	p.text = "{long}";
	TEST_EQ(persona_render(&p, &v, buf, sizeof(buf)), 0);
	TEST_EQ(strlen(buf), PERSONA_VALUE_MAX);
	/* Too small a buffer: E2BIG and a terminated prefix. */
	p.text = "Caller {from} rang {to}.";
	TEST_EQ(persona_render(&p, &v, buf, 10), E2BIG);
	TEST_STREQ(buf, "Caller 09");
	TEST_EQ(persona_render(&p, &v, buf, 0), E2BIG);
	return 0;
}

static int
test_check_lengths(void)
{
	struct personas *ps;
	struct ppurl     u[2];
	static char      file[8000];
	char            *p = file;

	persona_lib_init();
	TEST_EQ(ppurl_parse(&u[0], "ws://a:1", err, sizeof(err)), 0);
	TEST_EQ(ppurl_parse(
	            &u[1], "ws://b:2/a/much/longer/path", err, sizeof(err)),
	    0);
	p += sprintf(p, "[short]\ntext = Hello {from}.\n[long]\ntext = ");
	for (int i = 0; i < 1985; i++)
		*p++ = 'w';
	p += sprintf(p, "{from}\n");
	TEST_EQ(load(&ps, file), 0);
	/* The long one fits the first server's path, not the second's. */
	TEST_EQ(personas_check(ps, u, 1, err, sizeof(err)), 0);
	TEST_EQ(personas_check(ps, u, 2, err, sizeof(err)), E2BIG);
	TEST_ASSERT(strstr(err, "persona long (") != NULL);
	TEST_ASSERT(strstr(err, "libwebsockets") != NULL);
	personas_free(ps);
	/* A prompt that is only placeholders is empty without them. */
	TEST_EQ(load(&ps, "[p]\ntext = {greeting}\n"), 0);
	TEST_EQ(personas_check(ps, u, 1, err, sizeof(err)), EINVAL);
	TEST_ASSERT(strstr(err, "persona p (") != NULL);
	TEST_ASSERT(strstr(err, "empty without its placeholders") != NULL);
	personas_free(ps);
	return 0;
}

/* mode = agent|transcribe: a transcribe-only persona needs no text (it
 * takes the default's, for a call that still asks for an agent). */
static int
test_mode(void)
{
	struct personas      *ps;
	const struct persona *p;
	enum persona_why      why;
	bool                  unknown;
	struct ppurl          u[1];

	persona_lib_init();
	TEST_EQ(ppurl_parse(&u[0], "ws://a:1", err, sizeof(err)), 0);
	TEST_EQ(load(&ps,
	            "[assist]\nmode = Transcribe\nnumbers = 08040009999\n"
	            "[bot]\nmode = agent\ntext = Hello.\n"
	            "[plain]\ntext = Hi.\n"),
	    0);
	p = persona_choose(ps, NULL, "+91 80 4000 9999", &why, &unknown);
	TEST_STREQ(p->name, "assist");
	TEST_EQ(why, PERSONA_BY_NUMBER);
	TEST_STREQ(p->mode, "transcribe");
	TEST_STREQ(p->text, "Default text.");
	TEST_STREQ(p->voice, "NATF2.pt");
	TEST_STREQ(personas_find(ps, "bot")->mode, "agent");
	TEST_ASSERT(personas_find(ps, "plain")->mode == NULL);
	TEST_ASSERT(personas_default(ps)->mode == NULL);
	TEST_EQ(personas_check(ps, u, 1, err, sizeof(err)), 0);
	personas_free(ps);

	/* Only the two modes, once; an agent persona still needs text. */
	TEST_EQ(load(&ps, "[a]\nmode = assist\n"), EINVAL);
	TEST_ASSERT(strstr(err,
	                "line 2: the mode of persona a must be agent "
	                "or transcribe, not 'assist'")
	    != NULL);
	TEST_EQ(
	    load(&ps, "[a]\nmode = agent\nmode = agent\ntext = x\n"), EINVAL);
	TEST_ASSERT(strstr(err, "line 3: the mode of persona a") != NULL);
	TEST_EQ(load(&ps, "[a]\nmode = agent\n"), EINVAL);
	TEST_ASSERT(strstr(err, "persona a (") != NULL);
	TEST_ASSERT(strstr(err, "no text prompt") != NULL);
	TEST_EQ(load(&ps, "[a]\nnumbers = 1234\n"), EINVAL);
	TEST_ASSERT(strstr(err, "no text prompt") != NULL);
	return 0;
}

TEST_MAIN(TEST(test_parse_example), TEST(test_default_section_and_long_line),
    TEST(test_errors), TEST(test_choose), TEST(test_render),
    TEST(test_check_lengths), TEST(test_mode))
