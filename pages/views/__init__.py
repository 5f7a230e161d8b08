"""Views: functions that draw one part of a page into the current container.

A page script runs top to bottom and cannot be imported; a view can, so a page and a lesson step call the same code.
"""
