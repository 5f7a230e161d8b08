"""Lessons: the course as guided steps over the live views, with predict-then-reveal questions, presenter mode and
a handout."""

import streamlit as st

from pages.common import page, setting, tr
from pages.views import lessons

page(*lessons.PARAMS)
found, errors = lessons.course()
presenting = bool(setting("present"))
if presenting:
    st.html(lessons.PRESENTER_CSS)
else:
    st.title(tr("nav_lessons"))
    st.write(tr("lessons_intro"))
lessons.show_errors(errors)
if not found:
    st.stop()
lesson, step = lessons.choose(found)
lessons.navigation(lesson, step, presenting)
figures = lessons.show_step(lesson, step)
lessons.handout(lesson, step, figures)
