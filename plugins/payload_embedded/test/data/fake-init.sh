#!/bin/sh
echo fake agent
