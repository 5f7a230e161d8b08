"""Lessons: the course as guided steps over the live views, with predict-then-reveal questions, presenter mode, a
handout, and class mode (the lecturer leads, students follow on their own screens and answer)."""

import streamlit as st

from pages.common import page, setting, tr
from pages.views import classroom, lessons

page(*lessons.PARAMS, *classroom.PARAMS)
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
seat = classroom.seat()
classroom.follow(seat)
lesson, step = lessons.choose(found)
classroom.panel(seat, lesson.id, step, presenting)
lessons.navigation(lesson, step, presenting)
figures = lessons.show_step(lesson, step)
lessons.handout(lesson, step, figures)
classroom.drawn()
